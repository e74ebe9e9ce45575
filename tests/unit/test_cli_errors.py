"""The CLI tells a person what went wrong in one line with the fix; tracebacks only with --debug."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox.cli import app
from sandbox.cli_errors import explain
from sandbox.core.assembly import lock_data_dir
from sandbox.exceptions import AuthenticationError

NO_ENGINE = "unix:///nonexistent/docker.sock"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"SANDBOX_DATA_DIR": str(tmp_path / "data"), "SANDBOX_CONTROLLER_ID": "clitest"}


def invoke(args: list[str], env: dict[str, str], stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env=env, input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.stderr


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("error: ")
    return lines[0]


def test_a_missing_file_is_one_line_that_says_what_to_give(env: dict[str, str]) -> None:
    code, err = invoke(["run", "/nonexistent/job.py"], env)
    assert code == 2
    line = one_line(err)
    assert "cannot read /nonexistent/job.py" in line and "- for standard input" in line


def test_a_bad_setting_names_the_variable_to_fix(env: dict[str, str]) -> None:
    code, err = invoke(["keys", "list"], {**env, "SANDBOX_API__PORT": "eighty"})
    assert code == 2
    assert "SANDBOX_API__PORT" in one_line(err) and "eighty" not in err


def test_a_bad_backend_setting_is_named_without_the_union_tag(env: dict[str, str]) -> None:
    code, err = invoke(["keys", "list"], {**env, "SANDBOX_BACKEND__TIMEOUT_S": "soon"})
    assert code == 2 and "SANDBOX_BACKEND__TIMEOUT_S" in one_line(err)


def test_a_data_dir_that_cannot_be_created_says_how_to_choose_another(
    env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = invoke(
        ["keys", "create", "--owner", "ann"], {**env, "SANDBOX_DATA_DIR": str(blocker / "d")}
    )
    assert code == 2
    line = one_line(err)
    assert f"data dir {blocker / 'd'}" in line and "SANDBOX_DATA_DIR" in line


def test_an_unreachable_engine_names_the_address_it_tried(env: dict[str, str]) -> None:
    code, err = invoke(["run", "-"], {**env, "SANDBOX_DOCKER_HOST": NO_ENGINE}, "print(1)")
    assert code == 2
    line = one_line(err)
    assert f"no Docker engine answers at {NO_ENGINE}" in line and "sandbox doctor" in line


def test_a_data_dir_held_by_another_controller_says_how_to_run_beside_it(
    env: dict[str, str],
) -> None:
    local = {"SANDBOX_BACKEND__TYPE": "local", "SANDBOX_BACKEND__UNSAFE_NO_ISOLATION": "true"}
    held = lock_data_dir(Path(env["SANDBOX_DATA_DIR"]))
    try:
        code, err = invoke(["run", "-"], {**env, **local}, "print(1)")
    finally:
        held.close()
    assert code == 2
    line = one_line(err)
    assert "another controller is using" in line and "SANDBOX_CONTROLLER_ID" in line


def test_a_malformed_key_is_refused_before_any_request(env: dict[str, str]) -> None:
    key = "sbx_0123456789ab_" + "k" * 43 + "\n"
    args = ["approvals", "list", "--url", "http://127.0.0.1:9", "--api-key", key]
    code, err = invoke(args, env)
    assert code == 2
    line = one_line(err)
    assert "ends with a newline" in line and "k" * 43 not in line


def test_a_data_dir_this_user_cannot_write_says_how_to_choose_another(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SANDBOX_DATA_DIR", str(tmp_path / "data"))
    denied = PermissionError(13, "Permission denied", str(tmp_path / "data" / "controller.lock"))
    message, code = explain(denied)
    assert code == 2 and "Permission denied" in message
    assert f"data dir {tmp_path / 'data'} must be writable" in message and "run as root" in message


def test_a_refused_key_says_where_keys_come_from() -> None:
    message, code = explain(AuthenticationError("the API key was not accepted"))
    assert code == 2 and "SANDBOX_API_KEY" in message and "sandbox keys create" in message


def test_an_unexpected_error_points_to_debug() -> None:
    message, code = explain(RuntimeError("boom"))
    assert code == 1 and "boom" in message and "--debug" in message


def test_doctor_names_the_engine_address_the_data_dir_and_the_image(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        app, ["doctor"], env={**env, "SANDBOX_DOCKER_HOST": NO_ENGINE, "SANDBOX_IMAGE": "sbx:t1"}
    )
    assert result.exit_code == 1
    out = result.stdout
    assert f"FAIL Docker engine at {NO_ENGINE}" in out and "fix: " in out
    assert f"data dir {env['SANDBOX_DATA_DIR']}" in out
    assert "skip sandbox image sbx:t1 (needs the engine)" in out


def test_doctor_reports_a_bad_setting_by_name(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["doctor"], env={**env, "SANDBOX_RUNTIME": "kata"})
    assert result.exit_code == 1 and "FAIL bad setting SANDBOX_RUNTIME" in result.stdout


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "from sandbox.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_real_process_prints_one_line_and_no_traceback(env: dict[str, str]) -> None:
    done = cli(["keys", "list"], {**env, "SANDBOX_API__PORT": "eighty"})
    assert done.returncode == 2 and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert "SANDBOX_API__PORT" in one_line(done.stderr)


def test_debug_shows_the_traceback(env: dict[str, str]) -> None:
    done = cli(["--debug", "keys", "list"], {**env, "SANDBOX_API__PORT": "eighty"})
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ValidationError" in done.stderr


def test_sandbox_debug_in_the_environment_works_like_the_flag(env: dict[str, str]) -> None:
    done = cli(["keys", "list"], {**env, "SANDBOX_API__PORT": "eighty", "SANDBOX_DEBUG": "1"})
    assert "Traceback" in done.stderr
