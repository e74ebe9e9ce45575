"""The local backend's bookkeeping: each box's state file, and knowing which process is its own.

A pid alone may name another process once the first is reaped; a pid with its start time
(`start_time`) names one process. The state file keeps both, so a later instance of the
backend can kill and reap what an earlier one left, and never signals a stranger.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox.backends.base import ExitInfo

STATE = "state.json"


@dataclass
class Box:
    id: str
    dir: Path
    labels: dict[str, str]
    env: dict[str, str]
    cwd: Path
    nofile: int
    fsize: int
    proc: subprocess.Popen[bytes] | None = None
    pid: int | None = None
    started: int | None = None
    """The pid's start time (`start_time`): a pid and this name one process, never a reuse."""
    pidfd: int | None = None
    exit: ExitInfo | None = None
    foreign: bool = False
    """Left by another instance: no Popen, so no exit code; it can be killed and removed."""

    def signal_group(self) -> None:
        """SIGKILL the box's process group, unless it is known to be over."""
        if self.pid is None or self.exit is not None:
            return
        if self.foreign and start_time(self.pid) != self.started:
            return  # not our child: its pid may name another process by now
        killpg(self.pid)


def write_state(box: Box) -> None:
    data = {"labels": box.labels, "pid": box.pid, "started": box.started}
    tmp = box.dir / f".{STATE}.tmp"
    tmp.write_text(json.dumps(data))
    tmp.replace(box.dir / STATE)


def read_state(box_dir: Path) -> tuple[dict[str, str], int | None, int | None]:
    """The labels, pid and pid start time in a box's state file (pid and start time: None
    unless both are integers).

    Raises:
        OSError: the file cannot be read (not there, or removed meanwhile).
        ValueError: it is half-written or malformed.
    """
    data = json.loads((box_dir / STATE).read_text())
    try:
        labels = {str(k): str(v) for k, v in dict(data["labels"]).items()}
        pid, started = data.get("pid"), data.get("started")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed {STATE}") from exc
    if isinstance(pid, int) and isinstance(started, int):
        return labels, pid, started
    return labels, None, None


def start_time(pid: int | None) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, names one process."""
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name, which may itself hold spaces and parentheses.
    return int(stat.rpartition(")")[2].split()[19])


def killpg(pgid: int | None) -> None:
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def exit_info(returncode: int | None) -> ExitInfo:
    """Exit codes as a container engine reports them: 128 + signal for a killed process."""
    if returncode is None:
        return ExitInfo(exit_code=-1, oom_killed=False)
    return ExitInfo(exit_code=128 - returncode if returncode < 0 else returncode, oom_killed=False)
