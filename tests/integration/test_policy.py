"""Profiles, static analysis and command mode on a real engine."""

from __future__ import annotations

import json

import pytest

from sandbox import Orchestrator
from sandbox.exceptions import NotFoundError, PolicyViolationError


@pytest.fixture(scope="module")
def porc(make_settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("profiles") / "profiles.json"
    path.write_text(
        json.dumps(
            {
                "profiles": {
                    "guarded": {"static_analysis": "block", "commands": ["ls", "wc", "python3"]},
                    "tight": {"limits": {"memory_mb": 64, "timeout_s": 5}, "runtime": "runc"},
                }
            }
        )
    )
    settings = make_settings(controller_id=make_settings().controller_id + "y", profiles=path)
    with Orchestrator(settings) as orc:
        yield orc


def test_warn_mode_runs_the_code_and_reports_findings(porc: Orchestrator) -> None:
    with porc.session(owner="a") as s:
        r = s.run("import ctypes\nprint('ran')")
        assert r.stdout == "ran\n" and [f.rule for f in r.findings] == ["ctypes"]


def test_block_mode_refuses_before_any_container_sees_the_code(porc: Orchestrator) -> None:
    with porc.session(owner="a", profile="guarded") as s:
        with pytest.raises(PolicyViolationError) as info:
            s.run("import ctypes\nopen('/workspace/ran', 'w').write('x')")
        assert [f.rule for f in info.value.findings] == ["ctypes"]  # type: ignore[attr-defined]
        assert s.list_files() == []
        assert s.run("print('clean code runs')").stdout == "clean code runs\n"
    assert any(r["event"] == "policy_violation" for r in porc.audit.read())


def test_commands_run_without_a_shell_and_only_from_the_allowlist(porc: Orchestrator) -> None:
    with porc.session(owner="a", profile="guarded") as s:
        s.upload("data.txt", b"a\nb\nc\n")
        r = s.run_command(["wc", "-l", "data.txt"])
        assert (r.stdout, r.exit_code) == ("3 data.txt\n", 0)
        assert s.run_command("ls -1").stdout == "data.txt\n"
        r = s.run_command(["ls", "; touch /workspace/pwned"])  # one argument, never a shell
        assert r.exit_code != 0 and "pwned" not in [e.path for e in s.list_files()]
        assert s.run_command(["ls", "missing"]).exit_code == 2
        with pytest.raises(PolicyViolationError):
            s.run_command(["curl", "http://example.com"])
        with pytest.raises(PolicyViolationError):
            s.run_command("ls; id")


PLANT = """
import os, subprocess
with open("ls", "w") as f:
    f.write("#!/bin/sh\\necho pwned\\n")
os.chmod("ls", 0o755)
print(subprocess.run(["/workspace/ls"], capture_output=True, text=True).stdout, end="")
"""


def test_a_program_planted_in_the_workspace_is_never_what_a_command_runs(
    porc: Orchestrator,
) -> None:
    with porc.session(owner="a", profile="guarded") as s:
        assert s.run(PLANT).stdout == "pwned\n"  # the plant is real and would run
        for env in (None, {"PATH": "/workspace"}, {"PATH": ".:/workspace"}):
            r = s.run_command(["ls", "-1"], env=env)
            assert (r.stdout, r.exit_code) == ("ls\n", 0), r.stderr
        assert s.run_command(["/bin/ls", "-1"]).stdout == "ls\n"
        for program in ("/workspace/ls", "./ls", "../workspace/ls"):
            with pytest.raises(PolicyViolationError):
                s.run_command([program])
        with pytest.raises(PolicyViolationError):
            s.run_command(["python3", "-c", "import ctypes"])  # "guarded" blocks
    rules = [r["rules"] for r in porc.audit.read() if r["event"] == "policy_violation"]
    assert ["command_path"] in rules and ["ctypes"] in rules


def test_a_profile_sets_the_limits_and_a_key_may_be_kept_to_some(porc: Orchestrator) -> None:
    with porc.session(owner="a", profile="tight") as s:
        assert s.limits.memory_mb == 64
        assert s.run("b = bytearray(200 << 20)").oom_killed
    with pytest.raises(NotFoundError):
        porc.session(owner="a", profile="tight", allowed_profiles=("default",))
    with pytest.raises(NotFoundError):
        porc.session(owner="a", profile="no-such-profile")
