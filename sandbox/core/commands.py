"""Command mode: an argv (never a shell line) run in a fresh container, if the profile allows it.

The program is a bare name on the profile's allowlist, found inside the box on SYSTEM_PATH
(never on the run's own PATH), or an absolute path in one of SYSTEM_DIRS whose name is on the
list. Anything the box could have planted (`./ls`, `/workspace/ls`, `LD_PRELOAD`) is refused
unless the profile sets `commands_anywhere`. Python passed with `python3 -c` gets the
profile's static analysis, as code sent to `run` does.
"""

from __future__ import annotations

import re
import shlex
from typing import NoReturn

from sandbox.analysis import AnalysisFinding, analyze
from sandbox.exceptions import InvalidInputError, PolicyViolationError
from sandbox.profiles import Profile

SYSTEM_DIRS = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin")
SYSTEM_PATH = ":".join(SYSTEM_DIRS)
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


def command_plan(
    argv: list[str], env: dict[str, str] | None, profile: Profile
) -> tuple[str, list[AnalysisFinding]]:
    """The code that runs `argv` under `profile`, and static-analysis findings to report.

    Raises:
        PolicyViolationError: the program or environment is not allowed, or (static analysis
            'block') the Python it carries has findings; `findings` name the rules.
    """
    program = argv[0]
    base = program.rsplit("/", 1)[-1]
    if base not in profile.commands:
        _refuse(
            "command_not_allowed",
            f"command {base!r:.64} is not allowed in profile {profile.name!r}",
        )
    if not profile.commands_anywhere:
        if "/" in program and program.rpartition("/")[0] not in SYSTEM_DIRS:
            _refuse(
                "command_path",
                f"{program!r:.100} is refused: give a bare name or a path in {SYSTEM_PATH}",
            )
        if any(isinstance(name, str) and name.startswith("LD_") for name in env or {}):
            # The dynamic loader would load a library the box planted into an allowed program.
            _refuse("command_env", "LD_* variables are not allowed in a command's environment")
    mode = profile.static_analysis
    code = inline_python(argv)
    findings = analyze(code) if code is not None and mode != "off" else []
    if findings and mode == "block":
        raise PolicyViolationError(
            "refused by static analysis: "
            + "; ".join(f"line {f.line}: {f.message}" for f in findings),
            list(findings),
        )
    return command_code(argv), findings


def _refuse(rule: str, message: str) -> NoReturn:
    raise PolicyViolationError(message, [AnalysisFinding(rule=rule, line=0, message=message)])


def inline_python(argv: list[str]) -> str | None:
    """The source a python* interpreter would run from `-c` (also `-Ic CODE`, `-cCODE`)."""
    if not argv[0].rsplit("/", 1)[-1].startswith("python"):
        return None
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-", "--") or not arg.startswith("-"):
            return None  # stdin, a script or the end of the options: nothing inline
        if arg.startswith("--"):
            if arg == "--check-hash-based-pycs":
                next(args, None)
            continue
        for i, flag in enumerate(arg[1:], start=2):
            if flag == "c":
                return arg[i:] or next(args, "")
            if flag == "m":
                return None
            if flag in "WX":  # takes a value: the rest of this argument, or the next one
                if i == len(arg):
                    next(args, None)
                break
    return None


def command_code(argv: list[str]) -> str:
    """Python source that runs `argv` without a shell and exits with its status.

    A bare name is looked up on SYSTEM_PATH, never on the run's PATH; a missing program exits
    127 with a message on stderr, like a shell. Only the standard library is importable
    while it does so: the runtime puts the workspace first on sys.path, where the box could
    have planted a `subprocess.py`.
    """
    return (
        "import os, sys\n"
        "sys.path[:] = [p for p in sys.path if p.startswith(sys.base_prefix + os.sep)]\n"
        "import shutil, subprocess\n"
        f"argv = {argv!r}\n"
        f"program = argv[0] if '/' in argv[0] else shutil.which(argv[0], path={SYSTEM_PATH!r})\n"
        "if program is None:\n"
        f"    sys.stderr.write(f'{{argv[0]}}: command not found in {SYSTEM_PATH}\\n')\n"
        "    sys.exit(127)\n"
        "try:\n"
        "    r = subprocess.run([program, *argv[1:]], shell=False)\n"
        "except OSError as exc:\n"
        "    sys.stderr.write(f'{argv[0]}: {exc.strerror}\\n')\n"
        "    sys.exit(127 if isinstance(exc, FileNotFoundError) else 126)\n"
        "sys.exit(r.returncode if r.returncode >= 0 else 128 - r.returncode)\n"
    )
