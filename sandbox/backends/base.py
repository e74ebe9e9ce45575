"""The contract between the Orchestrator and a container backend.

A backend creates, starts, kills and removes one container per run and reports how it
ended; it knows nothing of sessions, code or output, which travel over the run's socket.
Every method maps the engine's failures to `sandbox.exceptions` (BackendError and
subclasses); none lets an engine-specific exception escape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from sandbox.runtime.protocol import WORKSPACE

LABEL_MANAGED = "sbx.managed"
LABEL_CONTROLLER = "sbx.controller"
LABEL_OWNER = "sbx.owner"
LABEL_SESSION = "sbx.session"
LABEL_EXEC = "sbx.exec"
LABEL_DEADLINE = "sbx.deadline"


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to create one hardened sandbox container, in backend-neutral words."""

    image: str
    user: str
    mounts: tuple[Mount, ...]
    labels: Mapping[str, str]
    memory_bytes: int
    cpus: float
    pids: int
    nofile: int
    fsize_bytes: int
    tmp_bytes: int
    tmp_inodes: int
    seccomp_profile: str
    network: Literal["none"] = "none"
    runtime: str = "runc"
    hostname: str = "sandbox"
    workdir: str = WORKSPACE
    env: Mapping[str, str] = field(default_factory=dict)
    cpu_group: str | None = None
    """Boxes with the same group share one CPU weight: under contention every group (a tenant)
    gets an equal share of the host, however many boxes it runs. None: the engine's default."""


LAUNCH_SPEC_FIELDS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(LaunchSpec))
"""What a backend may claim in `Backend.enforced`."""


@dataclass(frozen=True)
class ContainerRef:
    id: str


@dataclass(frozen=True)
class ExitInfo:
    exit_code: int
    oom_killed: bool


@dataclass(frozen=True)
class ContainerSummary:
    ref: ContainerRef
    labels: Mapping[str, str]


class Backend(Protocol):
    """What the Orchestrator needs from a container engine."""

    @property
    def enforced(self) -> frozenset[str]:
        """The LaunchSpec fields (names from LAUNCH_SPEC_FIELDS) this backend honours as written.

        A field left out is ignored: a memory cap or a `runtime` the backend does not enforce
        is simply not applied, so a caller that needs one must check here first.
        tests/contract.py checks every claimed field on every backend.
        """
        ...

    def ping(self) -> None:
        """Raises BackendUnavailableError when the engine does not answer."""

    def create(self, spec: LaunchSpec) -> ContainerRef:
        """Create (not start) a container. Raises BackendError, NotFoundError (image)."""

    def start(self, ref: ContainerRef) -> None:
        """Start a created container. Raises BackendError."""

    def kill(self, ref: ContainerRef) -> None:
        """SIGKILL every process of the container; a stopped or missing container is fine."""

    def remove(self, ref: ContainerRef) -> None:
        """Kill and remove the container; a missing container is fine."""

    def wait(self, ref: ContainerRef, timeout: float) -> ExitInfo | None:
        """Wait for the container to stop; None if it still runs after `timeout` seconds.

        Raises:
            NotFoundError: the container no longer exists.
        """

    def oom_kills(self, ref: ContainerRef) -> int | None:
        """OOM kills so far in a running container's memory cgroup; None if it cannot be read."""

    def list_managed(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        """Containers (running or not) carrying every given label."""

    def image_exists(self, tag: str) -> bool: ...

    def pull(self, tag: str) -> bool:
        """Try to pull an image; False (not an error) when no registry can be reached."""

    def build_image(
        self,
        context: Path,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        progress: Callable[[str], None],
    ) -> None:
        """Build an image from a folder. Raises ImageBuildError."""

    def close(self) -> None: ...
