"""Command mode: an argv (never a shell line) run in a fresh container, if the profile allows it."""

from __future__ import annotations

import re
import shlex

from sandbox.exceptions import InvalidInputError, PolicyViolationError

_SHELL_SYNTAX = re.compile(r"[;|&`<>\n]|\$\(")


def checked_argv(command: list[str] | str) -> list[str]:
    """A checked argv.

    Raises:
        PolicyViolationError: a string holding shell syntax.
        InvalidInputError: not a list of strings, empty, NUL bytes, too many arguments.
    """
    if isinstance(command, str):
        if _SHELL_SYNTAX.search(command):
            raise PolicyViolationError(
                "shell syntax is not allowed in a command (no ; | & $( ` < > or newlines)"
            )
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise InvalidInputError(f"cannot split the command: {exc}") from exc
    elif isinstance(command, list) and all(isinstance(a, str) for a in command):
        argv = list(command)
    else:
        raise InvalidInputError("a command is a list of strings or a string")
    if not argv or not argv[0] or any("\x00" in a for a in argv) or len(argv) > 1024:
        raise InvalidInputError(
            "a command needs a program name, at most 1024 arguments and no NUL bytes"
        )
    return argv


def command_code(argv: list[str]) -> str:
    """Python source that runs `argv` without a shell and exits with its status."""
    return (
        "import subprocess, sys\n"
        f"r = subprocess.run({argv!r}, shell=False)\n"
        "sys.exit(r.returncode if r.returncode >= 0 else 128 - r.returncode)\n"
    )
