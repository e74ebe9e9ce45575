"""Values that cross the public API: limits in, results and listings out."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sandbox.analysis import AnalysisFinding
from sandbox.exceptions import InvalidInputError

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

MiB = 1024 * 1024


def validate_id(value: str, what: str) -> str:
    """Check an owner or session id.

    Raises:
        InvalidInputError: the id is not 1-64 characters of A-Z a-z 0-9 _ -.
    """
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidInputError(f"{what} must match {ID_PATTERN.pattern}, got {value!r:.80}")
    return value


class Limits(BaseModel):
    """Per-run and per-session limits. Every one is enforced on the host side or by the kernel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(30.0, gt=0, le=3600)
    memory_mb: int = Field(512, ge=32, le=65536)
    cpus: float = Field(1.0, gt=0, le=64)
    pids: int = Field(128, ge=8, le=32768)
    nofile: int = Field(256, ge=16, le=65536)
    output_bytes: int = Field(1 * MiB, ge=1024, le=256 * MiB)
    """Cap for each of stdout and stderr; the rest is drained and dropped."""
    tmp_mb: int = Field(64, ge=1, le=4096)
    workspace_mb: int = Field(256, ge=1, le=65536)
    workspace_inodes: int = Field(65536, ge=64, le=10_000_000)
    skills_mb: int = Field(16, ge=1, le=4096)
    max_file_mb: int = Field(64, ge=1, le=65536)
    """Largest single file a run may write (RLIMIT_FSIZE) or the host may upload or serve."""


class ToolLimits(BaseModel):
    """Limits on tool calls made from sandbox code through the bridge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    call_timeout_s: float = Field(30.0, gt=0, le=600)
    max_args_bytes: int = Field(256 * 1024, ge=1024, le=16 * MiB)
    max_result_bytes: int = Field(1 * MiB, ge=1024, le=64 * MiB)
    calls_per_second: float = Field(50.0, gt=0)
    burst: int = Field(100, ge=1)
    max_in_flight: int = Field(16, ge=1, le=1024)
    """Calls of one run waiting for their upstream at once; more are refused at once."""
    max_refused: int = Field(200, ge=1)
    """Refused calls one run may make; past it the run's channel is cut and the run ends."""
    max_control_bytes_per_s: int = Field(8 * MiB, ge=64 * 1024)
    """Bytes one run may send on its control stream per second; past it the run is cut."""
    max_depth: int = Field(32, ge=2, le=256)
    """Deepest nesting of a call's arguments; deeper ones never reach an upstream."""
    restarts_per_owner: int = Field(3, ge=1)
    """Upstream restarts one owner's calls may cause per minute; past it, that owner's calls to
    that server are refused for the rest of the minute."""
    max_upstreams_per_server: int = Field(16, ge=1, le=4096)
    """Per-owner connections of one MCP server at once (a stdio one is a process each, about
    70 MB for a Python server); shared servers aside. Past it, a new owner's call is refused."""
    max_upstreams: int = Field(64, ge=1, le=16384)
    """Per-owner connections of all servers at once; past it, a new owner's call is refused."""
    upstream_idle_s: float = Field(300.0, gt=0)
    """A per-owner connection (its process) is stopped after this long without a call."""


class RunResult(BaseModel):
    """What one execution produced. Timeouts, OOM kills and floods are outcomes, not errors."""

    model_config = ConfigDict(frozen=True)

    exec_id: str
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    oom_killed: bool = False
    output_truncated: bool = False
    error: str | None = None
    """Set when the controller could not run the code as asked, e.g. 'container_lost'."""
    findings: list[AnalysisFinding] = []
    """Static-analysis findings, when the profile's mode is 'warn'."""
    outputs: dict[str, str] = {}
    """Where a long stream is saved whole in the box (`/workspace/.outputs/<exec_id>/stdout`),
    by stream; only streams that an output budget could cut are saved."""
    omitted: dict[str, int] = {}
    """Characters of each stream an output budget left out of this result (see `budget`)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.oom_killed or self.error)

    @property
    def outcome(self) -> str:
        """One word for metrics and the audit trail: ok, nonzero_exit, timed_out, oom_killed, or the error."""
        if self.timed_out:
            return "timed_out"
        if self.oom_killed:
            return "oom_killed"
        if self.error:
            return self.error
        return "ok" if self.exit_code == 0 else "nonzero_exit"


class OutputEvent(BaseModel):
    """A piece of a streamed run's output, in the order the run wrote it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stream: Literal["stdout", "stderr"]
    text: str


class FileEntry(BaseModel):
    """One entry of a workspace or skills listing. Names that are not UTF-8 are escaped."""

    model_config = ConfigDict(frozen=True)

    path: str
    kind: Literal["file", "dir", "symlink", "other"]
    size: int
    mtime: float


class SessionInfo(BaseModel):
    """An open session as the HTTP API lists it (`GET /v1/sessions`)."""

    id: str
    owner: str
    profile: str
    tools: list[str] | None
    ttl_s: float | None
    idle_s: float | None
    surface: str = "rest"
    """Where it was opened: rest, mcp-http, mcp-stdio or embedded."""
