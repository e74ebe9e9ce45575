"""Local process backend: each "container" is a plain host process. It gives NO ISOLATION.

For tests and development where no container engine runs. The in-container runtime runs as
a host subprocess with the controller's uid: sandbox code can read and write whatever that
uid can, reach the network, and outlive its "container" by leaving its process group
(setsid). Never give it code you would not run yourself.

What it honours (`enforced`): the image name (LOCAL_IMAGE and tags "built" here), labels,
env, RLIMIT_NOFILE (`nofile`) and RLIMIT_FSIZE (`fsize_bytes`); it also sets RLIMIT_CORE to 0.
What it does not: memory, cpus, pids, the /tmp size, seccomp, network "none", read-only
mounts and root file system, user, hostname, runtime, capabilities, no-new-privileges.

One container under the state folder:
    <state_dir>/<id>/state.json   labels, pid and its start time, so another instance can reap
                                  it (kept by `_local_state`)
    <state_dir>/<id>/root/        SBX_ROOT: workspace, skills, servers, run/sbx link to the
                                  mount sources, so the runtime's container paths resolve
    <state_dir>/<id>/home/        HOME
    <state_dir>/<id>/tmp/         TMPDIR
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict

from sandbox.backends._local_state import (
    STATE,
    Box,
    exit_info,
    killpg,
    read_state,
    start_time,
    write_state,
)
from sandbox.backends.base import ContainerRef, ContainerSummary, ExitInfo, LaunchSpec
from sandbox.exceptions import BackendError, NotFoundError, SandboxError
from sandbox.runtime.protocol import CONTAINER_DIR, ROOT_ENV, SOCKET_ENV, SOCKET_NAME

logger = logging.getLogger(__name__)

LOCAL_IMAGE = "local"
"""The one image this backend knows from the start; `build_image` registers more names."""
ENFORCED: frozenset[str] = frozenset({"image", "labels", "env", "nofile", "fsize_bytes"})

_RUNTIME = Path(__file__).resolve().parent.parent / "runtime" / "sbxrt.py"
_ID = re.compile(r"[0-9a-f]{16}")
_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the terminating NUL


class UnsafeBackendError(SandboxError, PermissionError):
    """The local process backend was asked for without `unsafe_no_isolation=True`."""


class LocalProcessBackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["local"] = "local"
    unsafe_no_isolation: bool = False
    """Must be True: sandbox code then runs as a host process with no isolation at all."""
    state_dir: Path | None = None
    """Containers' folders and state; what an earlier instance left here is listed and can be
    removed. None: a fresh temp folder, removed with every container in it at close()."""
    python: Path | None = None
    """Interpreter that runs the runtime and the code; None: the controller's own."""


class LocalProcessBackend:
    """Runs each sandbox "container" as a host process group, with NO ISOLATION.

    Raises (at construction):
        UnsafeBackendError: `unsafe_no_isolation` is not set.
        BackendError: the runtime, the interpreter or the state folder cannot be had.
    """

    enforced: frozenset[str] = ENFORCED

    def __init__(self, config: LocalProcessBackendConfig | None = None) -> None:
        self.config = config or LocalProcessBackendConfig()
        if not self.config.unsafe_no_isolation:
            raise UnsafeBackendError(
                "the local process backend runs sandbox code as plain host processes with no "
                "isolation; enable it explicitly with unsafe_no_isolation=True "
                "(SANDBOX_BACKEND__UNSAFE_NO_ISOLATION=true), for tests and development only"
            )
        self._python = str(self.config.python or sys.executable)
        if not _RUNTIME.is_file() or not Path(self._python).is_file():
            raise BackendError(f"local backend: {_RUNTIME} or {self._python} is missing")
        self._owns_state = self.config.state_dir is None
        try:
            if self.config.state_dir is None:
                self._state = Path(tempfile.mkdtemp(prefix="sbx-local-"))
            else:
                self._state = self.config.state_dir.absolute()
                self._state.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"local backend: state folder: {exc}") from exc
        self._boxes: dict[str, Box] = {}
        self._images = {LOCAL_IMAGE}
        self._lock = threading.Lock()
        logger.warning(
            "local process backend: no isolation; sandbox code runs as host processes with "
            "uid %d, the host's file system and network; memory, pids, seccomp and network "
            "limits are not enforced (state in %s)",
            os.getuid(),
            self._state,
        )

    def ping(self) -> None:
        """Nothing to reach: the engine is this process."""

    def create(self, spec: LaunchSpec) -> ContainerRef:
        """Lay out the container's folder; nothing runs yet.

        Raises:
            NotFoundError: the image is neither LOCAL_IMAGE nor a tag built here.
            BackendError: a mount target or the socket path cannot be laid out.
        """
        if spec.image not in self._images:
            raise NotFoundError(
                f"create container: image not found: {spec.image!r} "
                f"(the local backend knows {sorted(self._images)})"
            )
        box_id = secrets.token_hex(8)
        box_dir = self._state / box_id
        root, home, tmp = box_dir / "root", box_dir / "home", box_dir / "tmp"
        try:
            box_dir.mkdir(mode=0o700)
            for folder in (root, home, tmp):
                folder.mkdir()
            for mount in spec.mounts:
                link = root / _relative(mount.target)
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(mount.source.absolute())
            socket_path = _socket_path(root, spec)
            cwd = next((m.source for m in spec.mounts if m.target == spec.workdir), root)
            env = {
                "PATH": f"{Path(self._python).parent}:/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8",
                "HOME": str(home),
                "TMPDIR": str(tmp),
                "PYTHONDONTWRITEBYTECODE": "1",
                "XDG_CACHE_HOME": str(tmp / ".cache"),
                "MPLCONFIGDIR": str(tmp / ".config" / "matplotlib"),
                **spec.env,
                ROOT_ENV: str(root),
                SOCKET_ENV: socket_path,
            }
            box = Box(box_id, box_dir, dict(spec.labels), env, cwd, spec.nofile, spec.fsize_bytes)
            write_state(box)
        except OSError as exc:
            shutil.rmtree(box_dir, ignore_errors=True)
            raise BackendError(f"create container: {exc}") from exc
        except BackendError:
            shutil.rmtree(box_dir, ignore_errors=True)
            raise
        with self._lock:
            self._boxes[box_id] = box
        return ContainerRef(box_id)

    def start(self, ref: ContainerRef) -> None:
        """Start the runtime as a new process group with the cheap rlimits applied.

        Raises:
            NotFoundError: no such container.
            BackendError: the process could not be started or limited.
        """
        box = self._lookup(ref)
        with self._lock:
            if box.foreign:
                raise BackendError(f"start container {ref.id}: made by another instance")
            if box.proc is not None:
                return  # like Docker: starting a started container is a no-op
            logger.warning("local process backend: container %s starts with no isolation", ref.id)
            try:
                # Own session and process group, so kill() reaches every process the code
                # forks (unless one calls setsid itself: there is no cgroup here).
                proc = subprocess.Popen(
                    [self._python, "-I", str(_RUNTIME)],
                    env=box.env,
                    cwd=box.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BackendError(f"start container {ref.id}: {exc}") from exc
            box.proc, box.pid, box.started = proc, proc.pid, start_time(proc.pid)
            try:
                write_state(box)
                # After the spawn rather than in a preexec_fn (unsafe with threads): no sandbox
                # code runs before the channel delivers it, which is after start() returns.
                for limit, value in (
                    (resource.RLIMIT_NOFILE, box.nofile),
                    (resource.RLIMIT_FSIZE, box.fsize),
                    (resource.RLIMIT_CORE, 0),
                ):
                    resource.prlimit(proc.pid, limit, (value, value))
                box.pidfd = os.pidfd_open(proc.pid)
            except ProcessLookupError:
                pass  # it died already; wait() reports how
            except OSError as exc:
                killpg(proc.pid)
                proc.wait()
                box.exit = exit_info(proc.returncode)
                raise BackendError(f"start container {ref.id}: {exc}") from exc

    def kill(self, ref: ContainerRef) -> None:
        """SIGKILL the container's process group; a stopped or missing container is fine."""
        try:
            box = self._lookup(ref)
        except NotFoundError:
            return
        with self._lock:
            box.signal_group()

    def remove(self, ref: ContainerRef) -> None:
        """Kill the container, reap it and delete its folder; a missing container is fine."""
        try:
            box = self._lookup(ref)
        except NotFoundError:
            return
        with self._lock:
            box.signal_group()
            if box.proc is not None:
                try:
                    box.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    logger.warning("local container %s did not die after SIGKILL", ref.id)
                else:
                    box.exit = box.exit or exit_info(box.proc.returncode)
            if box.pidfd is not None:
                os.close(box.pidfd)
                box.pidfd = None
            # rmtree unlinks the mount links without following them into the mount sources.
            shutil.rmtree(box.dir, ignore_errors=True)
            self._boxes.pop(ref.id, None)

    def wait(self, ref: ContainerRef, timeout: float) -> ExitInfo | None:
        """Wait for the runtime to exit; then the rest of its process group is killed too.

        A container that was never started counts as stopped (exit 0), as on Docker; one left
        by another instance reports exit code -1 (its status went to its parent).

        Raises:
            NotFoundError: no such container.
        """
        box = self._lookup(ref)
        with self._lock:
            if box.exit is not None:
                return box.exit
            if box.pid is None:
                return ExitInfo(exit_code=0, oom_killed=False)
            if box.foreign and start_time(box.pid) != box.started:
                box.exit = ExitInfo(exit_code=-1, oom_killed=False)
                return box.exit
            # Our own descriptor: remove() may close the box's while we wait.
            fd = os.dup(box.pidfd) if box.pidfd is not None else None
        try:
            if fd is not None:
                ready, _, _ = select.select([fd], [], [], max(timeout, 0.0))
                if not ready:
                    return None
            elif box.proc is not None:
                try:
                    box.proc.wait(timeout=max(timeout, 0.0))
                except subprocess.TimeoutExpired:
                    return None
        finally:
            if fd is not None:
                os.close(fd)
        with self._lock:
            if box.exit is None:
                # The leader is dead and, when we are its parent, not yet reaped, so its process
                # group id cannot have been reused: end what it left behind, as a container's
                # processes end with its init.
                if box.proc is not None:
                    killpg(box.pid)
                code = box.proc.wait() if box.proc is not None else None
                box.exit = exit_info(code)
                if box.pidfd is not None:
                    os.close(box.pidfd)
                    box.pidfd = None
            return box.exit

    def oom_kills(self, ref: ContainerRef) -> int | None:
        """Always None: no memory cgroup here."""
        return None

    def list_managed(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        """Containers in the state folder (this instance's or an earlier one's) with every label."""
        found: list[ContainerSummary] = []
        for state in sorted(self._state.glob(f"*/{STATE}")):
            try:
                box_labels, _, _ = read_state(state.parent)
            except (OSError, ValueError):
                continue  # half-written or removed meanwhile
            if all(box_labels.get(k) == v for k, v in labels.items()):
                found.append(ContainerSummary(ContainerRef(state.parent.name), box_labels))
        return found

    def image_exists(self, tag: str) -> bool:
        return tag in self._images

    def pull(self, tag: str) -> bool:
        """Always False: there is no registry."""
        return False

    def build_image(
        self,
        context: Path,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        progress: Callable[[str], None],
    ) -> None:
        """Register `tag` as a name for the host's own environment; nothing is built."""
        self._images.add(tag)
        progress(f"local backend: nothing to build; {tag} runs on the host's Python")

    def close(self) -> None:
        """Release descriptors; a temp state folder is removed with every container in it.

        Containers in a configured state folder keep running, as Docker containers outlive
        their client; a later instance finds them with `list_managed`.
        """
        if self._owns_state:
            for summary in self.list_managed({}):
                self.remove(summary.ref)
            shutil.rmtree(self._state, ignore_errors=True)
            return
        with self._lock:
            for box in self._boxes.values():
                if box.pidfd is not None:
                    os.close(box.pidfd)
                    box.pidfd = None

    def _lookup(self, ref: ContainerRef) -> Box:
        """This instance's container, or one an earlier instance left in the state folder.

        Raises:
            NotFoundError: no such container (or a malformed id).
        """
        if not isinstance(ref.id, str) or not _ID.fullmatch(ref.id):
            raise NotFoundError(f"no such container: {ref.id!r:.80}")
        with self._lock:
            if box := self._boxes.get(ref.id):
                return box
            box_dir = self._state / ref.id
            try:
                labels, pid, started = read_state(box_dir)
            except (OSError, ValueError) as exc:
                raise NotFoundError(f"no such container: {ref.id}") from exc
            box = Box(ref.id, box_dir, labels, {}, box_dir, 0, 0, foreign=True)
            if pid is not None and started is not None:
                box.pid, box.started = pid, started
                if start_time(pid) == started:
                    with contextlib.suppress(ProcessLookupError):
                        box.pidfd = os.pidfd_open(pid)
            self._boxes[ref.id] = box
            return box


def _relative(target: str) -> PurePosixPath:
    """A mount target as a path under the container's root; refuses anything that escapes it.

    Raises:
        BackendError: the target is not absolute or climbs with '..'.
    """
    path = PurePosixPath(target)
    if not path.is_absolute() or ".." in path.parts or path == PurePosixPath("/"):
        raise BackendError(f"create container: bad mount target {target!r}")
    return path.relative_to("/")


def _socket_path(root: Path, spec: LaunchSpec) -> str:
    """Where the runtime dials: through the root's link if short enough, else the mount source.

    Raises:
        BackendError: both paths are longer than a Unix socket path may be.
    """
    candidates = [root / _relative(CONTAINER_DIR) / SOCKET_NAME]
    candidates += [m.source / SOCKET_NAME for m in spec.mounts if m.target == CONTAINER_DIR]
    for path in candidates:
        if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
            return str(path)
    raise BackendError(
        f"create container: socket path {candidates[0]} is too long; use a shorter state_dir"
    )
