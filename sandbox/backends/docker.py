"""Docker backend: the only module that imports `docker`.

Uses the SDK's low-level APIClient: one HTTP request per step (create, start, kill,
remove), with none of the extra inspects the high-level models do.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import docker
import docker.errors
import docker.types
import requests.exceptions

from sandbox.backends.base import (
    LAUNCH_SPEC_FIELDS,
    ContainerRef,
    ContainerSummary,
    ExitInfo,
    LaunchSpec,
)
from sandbox.backends.docker_config import DockerBackendConfig
from sandbox.exceptions import (
    BackendError,
    BackendUnavailableError,
    ImageBuildError,
    InvalidInputError,
    NotFoundError,
)

__all__ = ["DockerBackend", "DockerBackendConfig", "map_docker_errors"]

# Where the engine's memory cgroup of a container may live, by cgroup version and driver;
# {parent} is the container's cgroup parent ("/docker" unless a CPU group set one).
_OOM_FILES = (
    ("/sys/fs/cgroup/memory{parent}/{id}/memory.oom_control", "oom_kill"),
    ("/sys/fs/cgroup/memory{slice}/docker-{id}.scope/memory.oom_control", "oom_kill"),
    ("/sys/fs/cgroup{parent}/{id}/memory.events", "oom_kill"),
    ("/sys/fs/cgroup{slice}/docker-{id}.scope/memory.events", "oom_kill"),
)
# Tenants' CPU groups live under one parent of their own (cgroupfs driver).
CPU_GROUP_ROOT = "/sbx-tenants"
_GROUP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


# The tenants' boxes together weigh a quarter of what the engine and the controller do, so a
# host full of busy boxes still creates, starts and removes containers promptly.
_TENANTS_WEIGHT = (
    ("/sys/fs/cgroup/cpu" + CPU_GROUP_ROOT, "cpu.shares", "256"),  # v1; the default is 1024
    ("/sys/fs/cgroup" + CPU_GROUP_ROOT, "cpu.weight", "25"),  # v2; the default is 100
)


def _weigh_tenants() -> None:
    """Create the tenants' parent CPU group with its weight, where this controller may."""
    for folder, name, value in _TENANTS_WEIGHT:
        root = Path(folder).parent
        if not root.is_dir() or (
            name == "cpu.weight" and not (root / "cgroup.controllers").exists()
        ):
            continue
        with contextlib.suppress(OSError):  # not root, or another layout: the default weight
            Path(folder).mkdir(exist_ok=True)
            (Path(folder) / name).write_text(value)
            return


def _cgroup_parent(group: str | None, driver: str) -> str | None:
    """The engine's cgroup parent for a CPU group: a path under the cgroupfs driver, a slice
    (`sbx-<group>.slice`, inside `sbx.slice`) under the systemd one.

    Raises:
        InvalidInputError: a group name that is not a plain path segment.
    """
    if group is None:
        return None
    if not _GROUP_NAME.fullmatch(group) or "-" in group:
        raise InvalidInputError(f"bad CPU group name {group!r:.80}")
    if driver == "systemd":
        return f"sbx-{group}.slice"
    return f"{CPU_GROUP_ROOT}/{group}"


@contextlib.contextmanager
def map_docker_errors(what: str) -> Iterator[None]:
    """Translate docker SDK and transport errors into sandbox.exceptions."""
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise NotFoundError(f"{what}: image not found: {exc.explanation}") from exc
    except docker.errors.NotFound as exc:
        raise NotFoundError(f"{what}: {exc.explanation}") from exc
    except docker.errors.APIError as exc:
        raise BackendError(f"{what}: {exc.explanation or exc}") from exc
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        raise BackendUnavailableError(f"{what}: Docker engine unreachable: {exc}") from exc


class DockerBackend:
    """Runs sandbox containers on a Docker engine (20.10 or newer)."""

    enforced: frozenset[str] = LAUNCH_SPEC_FIELDS

    def __init__(self, config: DockerBackendConfig | None = None) -> None:
        self.config = config or DockerBackendConfig()
        self._parents: dict[str, str] = {}  # container id -> its cgroup parent
        self._weighed = False
        self._driver: str | None = None
        with map_docker_errors("connect"):
            if self.config.base_url:
                self._api = docker.APIClient(
                    base_url=self.config.base_url,
                    version="auto",
                    timeout=int(self.config.timeout_s),
                    max_pool_size=self.config.pool_size,
                )
            else:
                kwargs = docker.utils.kwargs_from_env()
                self._api = docker.APIClient(
                    version="auto",
                    timeout=int(self.config.timeout_s),
                    max_pool_size=self.config.pool_size,
                    **kwargs,
                )

    def ping(self) -> None:
        with map_docker_errors("ping"):
            self._api.ping()

    def info(self) -> dict[str, object]:
        """The engine's `docker info` (runtimes, cgroup version, ...)."""
        with map_docker_errors("info"):
            return dict(self._api.info())

    def _cgroup_driver(self) -> str:
        if self._driver is None:
            self._driver = str(self.info().get("CgroupDriver") or "cgroupfs")
        return self._driver

    def create(self, spec: LaunchSpec) -> ContainerRef:
        host_config = self._api.create_host_config(
            binds={
                str(m.source): {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
                for m in spec.mounts
            },
            read_only=True,
            privileged=False,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true", f"seccomp={spec.seccomp_profile}"],
            network_mode=spec.network,
            pids_limit=spec.pids,
            mem_limit=spec.memory_bytes,
            memswap_limit=spec.memory_bytes,  # equal to the memory limit: no swap
            nano_cpus=int(spec.cpus * 1e9),
            ulimits=[
                docker.types.Ulimit(name="nofile", soft=spec.nofile, hard=spec.nofile),
                docker.types.Ulimit(name="core", soft=0, hard=0),
                docker.types.Ulimit(name="fsize", soft=spec.fsize_bytes, hard=spec.fsize_bytes),
            ],
            tmpfs={
                # The container's own /tmp: a size-capped tmpfs, not a host path.
                "/tmp": f"rw,nosuid,nodev,noexec,size={spec.tmp_bytes},"  # noqa: S108
                f"nr_inodes={spec.tmp_inodes},mode=1777"
            },
            init=True,
            ipc_mode="private",
            cgroupns="private",
            log_config=docker.types.LogConfig(type="none"),
            restart_policy={"Name": "no"},
            oom_score_adj=500,
            runtime=spec.runtime,
            cgroup_parent=_cgroup_parent(spec.cpu_group, self._cgroup_driver()),
        )
        with map_docker_errors("create container"):
            created = self._api.create_container(
                image=spec.image,
                user=spec.user,
                hostname=spec.hostname,
                working_dir=spec.workdir,
                environment=dict(spec.env),
                labels=dict(spec.labels),
                network_disabled=True,
                host_config=host_config,
            )
        if spec.cpu_group is not None and not self._weighed and self._driver == "cgroupfs":
            _weigh_tenants()
            self._weighed = True
        ref = ContainerRef(created["Id"])
        self._parents[ref.id] = host_config.get("CgroupParent") or ""
        return ref

    def start(self, ref: ContainerRef) -> None:
        with map_docker_errors("start container"):
            self._api.start(ref.id)

    def kill(self, ref: ContainerRef) -> None:
        try:
            with map_docker_errors("kill container"):
                self._api.kill(ref.id)
        except NotFoundError:
            pass
        except BackendError as exc:
            if "is not running" not in str(exc):
                raise

    def remove(self, ref: ContainerRef) -> None:
        # A tenant's emptied CPU group is left in place: removing it could race the engine
        # creating that tenant's next box inside it. One empty folder per owner is the cost.
        self._parents.pop(ref.id, None)
        try:
            with map_docker_errors("remove container"):
                self._api.remove_container(ref.id, force=True, v=True)
        except NotFoundError:
            pass
        except BackendError as exc:
            if "already in progress" not in str(exc):
                raise

    def wait(self, ref: ContainerRef, timeout: float) -> ExitInfo | None:
        try:
            with map_docker_errors("wait for container"):
                self._api.wait(ref.id, timeout=max(timeout, 0.001))
        except BackendUnavailableError as exc:
            if isinstance(
                exc.__cause__, requests.exceptions.ReadTimeout | requests.exceptions.ConnectionError
            ):
                return None
            raise
        with map_docker_errors("inspect container"):
            state = self._api.inspect_container(ref.id)["State"]
        return ExitInfo(exit_code=int(state["ExitCode"]), oom_killed=bool(state["OOMKilled"]))

    def oom_kills(self, ref: ContainerRef) -> int | None:
        given = self._parents.get(ref.id, "")
        parent = given if given.startswith("/") else "/docker"  # cgroupfs: a path
        # systemd: a slice (sbx-t1.slice lives in sbx.slice), or the engine's system.slice
        slice_ = f"/sbx.slice/{given}" if given.endswith(".slice") else "/system.slice"
        for pattern, key in _OOM_FILES:
            try:
                text = Path(pattern.format(id=ref.id, parent=parent, slice=slice_)).read_text()
            except OSError:
                continue
            for line in text.splitlines():
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
        return None

    def list_managed(self, labels: Mapping[str, str]) -> list[ContainerSummary]:
        with map_docker_errors("list containers"):
            found = self._api.containers(
                all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]}
            )
        return [ContainerSummary(ContainerRef(c["Id"]), c.get("Labels") or {}) for c in found]

    def image_exists(self, tag: str) -> bool:
        try:
            with map_docker_errors("inspect image"):
                self._api.inspect_image(tag)
        except NotFoundError:
            return False
        return True

    def pull(self, tag: str) -> bool:
        try:
            with map_docker_errors("pull image"):
                self._api.pull(tag)
        except (BackendError, NotFoundError):
            return False
        return True

    def build_image(
        self,
        context: Path,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        labels: Mapping[str, str],
        progress: Callable[[str], None],
    ) -> None:
        try:
            with map_docker_errors("build image"):
                for chunk in self._api.build(
                    path=str(context),
                    dockerfile=dockerfile,
                    tag=tag,
                    buildargs=dict(buildargs),
                    labels=dict(labels),
                    rm=True,
                    forcerm=True,
                    pull=False,
                    decode=True,
                ):
                    if "error" in chunk:
                        raise ImageBuildError(str(chunk["error"]).strip())
                    if line := str(chunk.get("stream", "")).strip():
                        progress(line)
        except (BackendError, NotFoundError) as exc:
            raise ImageBuildError(str(exc)) from exc

    def close(self) -> None:
        self._api.close()
