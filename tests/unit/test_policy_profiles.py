"""Static analysis, command splitting and profiles: pure logic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.analysis import analyze
from sandbox.core.commands import checked_argv as _argv
from sandbox.exceptions import InvalidInputError, NotFoundError, PolicyViolationError
from sandbox.profiles import BUILTIN, load_profiles, pick


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("import ctypes", "ctypes"),
        ("from ctypes import CDLL", "ctypes"),
        ("import os\nwhile True:\n    os.fork()", "fork_loop"),
        ("import os\nfor _ in range(9):\n    os.forkpty()", "fork_loop"),
        ("import subprocess\nsubprocess.run('ls', shell=True)", "shell"),
        ("import os\nos.system('id')", "shell"),
    ],
)
def test_risky_code_is_flagged(code: str, rule: str) -> None:
    assert [f.rule for f in analyze(code)] == [rule]


@pytest.mark.parametrize(
    "code",
    [
        "import os\nif os.fork() == 0:\n    pass",
        "import subprocess\nsubprocess.run(['ls'])",
        "print(1)",
        "def f(:",
        "x = 'import ctypes'",
    ],
)
def test_ordinary_code_is_not_flagged(code: str) -> None:
    assert analyze(code) == []


@pytest.mark.parametrize(
    "bad",
    [
        "ls; rm -rf /",
        "cat x | sh",
        "echo $(id)",
        "ls `id`",
        "ls > /tmp/x",
        "ls && id",
        "ls\nid",
        "a < b",
    ],
)
def test_shell_syntax_in_a_command_string_is_refused(bad: str) -> None:
    with pytest.raises(PolicyViolationError):
        _argv(bad)


def test_commands_split_like_a_shell_would_without_one() -> None:
    assert _argv("ls -la 'my dir'") == ["ls", "-la", "my dir"]
    assert _argv(["grep", "-c", "a;b"]) == ["grep", "-c", "a;b"]  # argv items are never parsed
    for bad in ([], [""], ["ls", "a\x00"], 42, "unclosed 'quote"):
        with pytest.raises(InvalidInputError):
            _argv(bad)  # type: ignore[arg-type]


def test_builtin_profiles_and_a_profiles_file(tmp_path: Path) -> None:
    assert BUILTIN["strict"].runtime == "runsc" and BUILTIN["strict"].static_analysis == "block"
    path = tmp_path / "profiles.json"
    path.write_text(
        json.dumps(
            {
                "profiles": {
                    "etl": {"limits": {"memory_mb": 1024}, "tools": ["crm.*"], "commands": ["wc"]}
                }
            }
        )
    )
    profiles = load_profiles(path)
    assert profiles["etl"].limits.memory_mb == 1024 and profiles["etl"].tools == ("crm.*",)
    assert not profiles["etl"].commands_anywhere  # commands from the workspace: opt-in only
    assert set(profiles) >= {"strict", "default", "data-science", "etl"}
    with pytest.raises(NotFoundError):
        pick(profiles, "etl", allowed=("default",))
    with pytest.raises(NotFoundError):
        pick(profiles, "nope")
    path.write_text(json.dumps({"profiles": {"bad": {"runtime": "kata"}}}))
    with pytest.raises(InvalidInputError):
        load_profiles(path)
