"""Isolation defaults: turns limits and a session's folders into a backend-neutral launch spec."""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Mapping
from pathlib import Path

from sandbox.backends.base import (
    LABEL_CONTROLLER,
    LABEL_DEADLINE,
    LABEL_EXEC,
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_SESSION,
    LaunchSpec,
    Mount,
)
from sandbox.images import images_dir
from sandbox.models import Limits, MiB
from sandbox.runtime.protocol import CONTAINER_DIR, SERVERS, SKILLS
from sandbox.runtime.protocol import WORKSPACE as WORKSPACE  # re-exported: the runs' cwd
from sandbox.storage import SANDBOX_GID, SANDBOX_UID


@functools.cache
def seccomp_profile() -> str:
    """The project's seccomp profile (images/seccomp.json) as the engine wants it: JSON text."""
    return (images_dir() / "seccomp.json").read_text()


def launch_spec(
    *,
    image: str,
    limits: Limits,
    runtime: str,
    workspace: Path,
    skills: Path,
    channel_dir: Path,
    labels: Mapping[str, str],
    servers: Path | None = None,
    owner: str | None = None,
) -> LaunchSpec:
    """The hardened spec of one box. With `owner`, its boxes share one CPU group: under
    contention each tenant gets an equal share of the host, however many boxes it runs."""
    mounts = [
        Mount(workspace, WORKSPACE, read_only=False),
        Mount(skills, SKILLS, read_only=True),
        Mount(channel_dir, CONTAINER_DIR, read_only=True),
    ]
    if servers is not None:
        mounts.append(Mount(servers, SERVERS, read_only=True))
    return LaunchSpec(
        image=image,
        user=f"{SANDBOX_UID}:{SANDBOX_GID}",
        mounts=tuple(mounts),
        labels=dict(labels),
        memory_bytes=limits.memory_mb * MiB,
        cpus=limits.cpus,
        pids=limits.pids,
        nofile=limits.nofile,
        fsize_bytes=limits.max_file_mb * MiB,
        tmp_bytes=limits.tmp_mb * MiB,
        tmp_inodes=16384,
        seccomp_profile=seccomp_profile(),
        network="none",
        runtime=runtime,
        cpu_group=cpu_group(owner) if owner is not None else None,
    )


def cpu_group(owner: str) -> str:
    """An owner's CPU group name: a digest, so host cgroup paths name no tenant."""
    return "t" + hashlib.sha256(owner.encode()).hexdigest()[:16]


def labels_for(
    controller: str,
    owner: str,
    session: str,
    exec_id: str,
    max_age_s: float,
    now: float | None = None,
) -> dict[str, str]:
    """Labels that let any later controller or `sandbox gc` find and judge a container."""
    deadline = int((time.time() if now is None else now) + max_age_s)
    return {
        LABEL_MANAGED: "1",
        LABEL_CONTROLLER: controller,
        LABEL_OWNER: owner,
        LABEL_SESSION: session,
        LABEL_EXEC: exec_id,
        LABEL_DEADLINE: str(deadline),
    }
