"""Where session workspaces and owner skills live on the host, and how their size is capped.

Workspaces: one folder per session under `<data_dir>/workspaces/<random>`. With the 'tmpfs'
backing (the default when the controller is root) the controller mounts a size- and
inode-capped tmpfs there for the session's lifetime, so a disk-fill attack stops at the
quota and never touches the host disk; its pages count against the host's memory, which is
why the quota is small by default. The 'directory' backing has no hard quota (only the
per-file RLIMIT_FSIZE) and is meant for development as a non-root user.

Skills: one folder per owner under `<data_dir>/skills/<random>`, on disk, persistent,
mounted read-only into that owner's containers. Only the controller writes it, through
`SafeDir`, with a per-owner byte quota checked on every save.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import logging
import os
import shutil
from pathlib import Path

from sandbox.exceptions import QuotaExceededError, SandboxError
from sandbox.models import MiB

logger = logging.getLogger(__name__)

SANDBOX_UID = 1000
SANDBOX_GID = 1000
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MNT_DETACH = 0x2

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _mount_tmpfs(target: Path, size_bytes: int, inodes: int) -> None:
    opts = f"size={size_bytes},nr_inodes={inodes},mode=0755,uid={SANDBOX_UID},gid={SANDBOX_GID}"
    rc = _libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", _MS_NOSUID | _MS_NODEV, opts.encode())
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount tmpfs on {target}: {os.strerror(err)}")


def _umount(target: Path) -> None:
    if _libc.umount2(os.fsencode(target), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # EINVAL: not a mount point
            raise OSError(err, f"umount {target}: {os.strerror(err)}")


def _is_mount(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return os.path.ismount(path)
    return False


class Storage:
    """Creates and removes workspaces, and finds each owner's skills folder."""

    def __init__(self, data_dir: Path, backing: str, skills: Path | None = None) -> None:
        self.data_dir = data_dir
        self.workspaces = data_dir / "workspaces"
        self.skills = skills if skills is not None else data_dir / "skills"  # may be shared
        self.runs = data_dir / "runs"
        for d in (data_dir, self.workspaces, self.skills, self.runs):
            d.mkdir(mode=0o711, parents=True, exist_ok=True)
        if backing == "auto":
            backing = "tmpfs" if os.geteuid() == 0 else "directory"
        if backing == "directory":
            logger.warning("workspace backing 'directory' has no hard disk quota")
        self.backing = backing

    def create_workspace(self, name: str, size_mb: int, inodes: int) -> Path:
        """Make an empty workspace folder owned by the sandbox user, capped when backed by tmpfs.

        Raises:
            SandboxError: the tmpfs could not be mounted (set workspace_backing='directory').
        """
        path = self.workspaces / name
        path.mkdir(mode=0o755)
        if self.backing == "tmpfs":
            try:
                _mount_tmpfs(path, size_mb * MiB, inodes)
            except OSError as exc:
                path.rmdir()
                raise SandboxError(
                    f"cannot mount the workspace quota ({exc.strerror}); run the controller as root "
                    "or set SANDBOX_WORKSPACE_BACKING=directory"
                ) from exc
        else:
            with contextlib.suppress(PermissionError):
                os.chown(path, SANDBOX_UID, SANDBOX_GID)
        return path

    def remove_workspace(self, path: Path) -> None:
        if _is_mount(path):
            _umount(path)
        shutil.rmtree(path, ignore_errors=True)

    def skills_dir(self, owner: str) -> Path:
        # Hashed, so mount sources in /proc/self/mountinfo name no tenant.
        digest = hashlib.sha256(owner.encode()).hexdigest()[:32]
        path = self.skills / digest
        path.mkdir(mode=0o755, exist_ok=True)
        return path

    def skills_room(self, owner: str, quota_mb: int) -> int:
        """Bytes the owner may still add to their skills."""
        used = 0
        for root, _dirs, files in os.walk(self.skills_dir(owner)):
            for f in files:
                with contextlib.suppress(OSError):
                    used += os.lstat(os.path.join(root, f)).st_size
        return max(0, quota_mb * MiB - used)

    def check_skills_room(self, owner: str, adding: int, quota_mb: int) -> None:
        """Raises QuotaExceededError if `adding` more bytes would pass the owner's skills quota."""
        if adding > self.skills_room(owner, quota_mb):
            raise QuotaExceededError(f"skills quota of {quota_mb} MiB reached")

    def reap(self) -> int:
        """Remove every workspace and run folder left by a controller that died. Returns a count."""
        count = 0
        for parent in (self.workspaces, self.runs):
            for child in parent.iterdir():
                if _is_mount(child):
                    _umount(child)
                shutil.rmtree(child, ignore_errors=True)
                count += 1
        return count
