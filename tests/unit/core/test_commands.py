"""Command mode: which program an argv may start, and what the box may not substitute for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox import Orchestrator
from sandbox.core.commands import command_plan, inline_python
from sandbox.core.session import Session
from sandbox.exceptions import PolicyViolationError
from sandbox.profiles import Profile
from tests.unit.conftest import MakeOrc

LISTED = Profile(commands=("ls", "python3"), static_analysis="off")


def refused_rule(
    argv: list[str], profile: Profile = LISTED, env: dict[str, str] | None = None
) -> str:
    with pytest.raises(PolicyViolationError) as info:
        command_plan(argv, env, profile)
    return str(info.value.findings[0].rule)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "program", ["ls", "/usr/bin/ls", "/bin/ls", "/usr/local/bin/ls", "/usr/sbin/ls", "/sbin/ls"]
)
def test_a_listed_bare_name_or_a_system_path_to_one_is_allowed(program: str) -> None:
    code, findings = command_plan([program, "-l"], None, LISTED)
    assert findings == [] and repr(program) in code


@pytest.mark.parametrize(
    "program",
    [
        "./ls",
        "ls/../ls",
        "bin/ls",
        "../bin/ls",
        "/workspace/ls",
        "/workspace/sub/ls",
        "/tmp/ls",
        "/skills/ls",
        "/servers/ls",
        "/home/sandbox/ls",
        "/run/sbx/ls",
        "/usr/bin/../../workspace/ls",
        "/usr/bin/./ls",
        "//usr/bin/ls",
        "/usr/bin//ls",
        "/usr/bin/sub/ls",
    ],
)
def test_a_listed_name_anywhere_but_a_system_folder_is_refused(program: str) -> None:
    assert refused_rule([program]) == "command_path"


@pytest.mark.parametrize("program", ["curl", "/usr/bin/curl", "./curl", "lsx", "/usr/bin/"])
def test_a_name_off_the_list_is_refused_wherever_it_lives(program: str) -> None:
    assert refused_rule([program]) == "command_not_allowed"


def test_loader_variables_are_refused_in_a_commands_environment() -> None:
    for name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"):
        assert refused_rule(["ls"], env={name: "/workspace/x.so"}) == "command_env"
    command_plan(["ls"], {"LANG": "C", "PATH": "/workspace"}, LISTED)  # resolved without it


def test_a_profile_may_opt_in_to_commands_from_anywhere() -> None:
    anywhere = LISTED.model_copy(update={"commands_anywhere": True})
    for program in ("./ls", "/workspace/ls"):
        command_plan([program], {"LD_PRELOAD": "x.so"}, anywhere)
    assert refused_rule(["./curl"], anywhere) == "command_not_allowed"
    assert Profile().commands_anywhere is False


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["python3", "-c", "print(1)"], "print(1)"),
        (["python3", "-I", "-c", "print(1)", "x"], "print(1)"),
        (["python3", "-Ic", "print(1)"], "print(1)"),
        (["python3", "-cprint(1)"], "print(1)"),
        (["/usr/bin/python3.12", "-W", "ignore", "-X", "dev", "-c", "x"], "x"),
        (["python3", "-Wignore", "-c", "x"], "x"),
        (["python3", "--check-hash-based-pycs", "never", "-c", "x"], "x"),
        (["python3", "-c"], ""),
        (["python3", "script.py", "-c", "x"], None),
        (["python3", "-m", "json.tool", "-c"], None),
        (["python3", "-", "-c", "x"], None),
        (["python3", "-W", "-c", "x"], None),  # '-c' is the -W value; 'x' is a script
        (["ls", "-c", "import ctypes"], None),
    ],
)
def test_the_python_an_interpreter_would_run_from_dash_c_is_found(
    argv: list[str], code: str | None
) -> None:
    assert inline_python(argv) == code


def test_static_analysis_covers_python_passed_with_dash_c() -> None:
    argv = ["python3", "-c", "import ctypes"]
    block = LISTED.model_copy(update={"static_analysis": "block"})
    assert refused_rule(argv, block) == "ctypes"
    warn = LISTED.model_copy(update={"static_analysis": "warn"})
    assert [f.rule for f in command_plan(argv, None, warn)[1]] == ["ctypes"]
    assert command_plan(argv, None, LISTED)[1] == []  # "off"
    assert command_plan(["python3", "-c", "print(1)"], None, block)[1] == []


# -- through Session.run_command on the local-process backend ---------------------------------

PLANT = """
import os
for name in ("ls", "python3"):
    with open(name, "w") as f:
        f.write("#!/bin/sh\\necho pwned\\n")
    os.chmod(name, 0o755)
with open("subprocess.py", "w") as f:
    f.write("print('pwned')\\nraise SystemExit(9)\\n")
print(os.getcwd())
"""


@pytest.fixture
def planted(make_orc: MakeOrc) -> tuple[Orchestrator, Session, str]:
    """A session whose workspace holds an executable `ls`, `python3` and a `subprocess.py`."""
    orc = make_orc()
    s = orc.session(owner="mallory")
    r = s.run(PLANT)
    assert r.exit_code == 0, r.stderr
    return orc, s, r.stdout.strip()


@pytest.mark.parametrize("program", ["./ls", "/workspace/ls", "../workspace/ls"])
def test_a_planted_program_is_refused_audited_and_its_slot_given_back(
    planted: tuple[Orchestrator, Session, str], program: str
) -> None:
    orc, s, _ = planted
    slot = orc.admission.acquire(s.principal, surface="embedded", timeout=5)
    with pytest.raises(PolicyViolationError):
        s.run_command([program], slot=slot)
    assert not slot.held
    violations = [r for r in orc.audit.read() if r["event"] == "policy_violation"]
    assert violations[-1]["rules"] == ["command_path"]
    assert violations[-1]["command"] == program


def test_a_bare_name_is_never_looked_up_on_the_runs_path(
    planted: tuple[Orchestrator, Session, str],
) -> None:
    _, s, workspace = planted
    for path in ("/workspace", workspace, f".:{workspace}"):
        r = s.run_command(["ls"], env={"PATH": path})
        assert "pwned" not in r.stdout and r.exit_code == 0, r.stderr
        assert "subprocess.py" in r.stdout.split()  # the real ls listed the workspace


def test_a_planted_module_does_not_replace_the_commands_wrapper(
    planted: tuple[Orchestrator, Session, str],
) -> None:
    _, s, _ = planted
    r = s.run_command(["python3", "-c", "print('real')"])
    assert (r.stdout, r.exit_code) == ("real\n", 0), r.stderr


def test_a_loader_variable_cannot_slip_a_planted_library_into_a_command(
    planted: tuple[Orchestrator, Session, str],
) -> None:
    _, s, workspace = planted
    with pytest.raises(PolicyViolationError):
        s.run_command(["ls"], env={"LD_PRELOAD": f"{workspace}/evil.so"})


def test_static_analysis_warns_on_and_blocks_python_given_as_a_command(
    make_orc: MakeOrc, tmp_path: Path
) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({"profiles": {"guarded": {"static_analysis": "block"}}}))
    orc = make_orc(profiles=path)
    argv = ["python3", "-c", "import ctypes\nprint('ran')"]
    with orc.session(owner="a") as s:  # "default" warns
        r = s.run_command(argv)
        assert r.stdout == "ran\n" and [f.rule for f in r.findings] == ["ctypes"]
    with orc.session(owner="a", profile="guarded") as s:
        with pytest.raises(PolicyViolationError):
            s.run_command(argv)
        assert s.run_command(["python3", "-c", "print('clean')"]).stdout == "clean\n"
    assert any(
        r["event"] == "policy_violation" and r["rules"] == ["ctypes"] for r in orc.audit.read()
    )


def test_a_listed_program_missing_from_the_box_exits_127_like_a_shell(
    make_orc: MakeOrc, tmp_path: Path
) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({"profiles": {"odd": {"commands": ["no-such-tool-here"]}}}))
    with make_orc(profiles=path).session(owner="a", profile="odd") as s:
        r = s.run_command(["no-such-tool-here"])
        assert r.exit_code == 127 and "command not found" in r.stderr
