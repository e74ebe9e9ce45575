"""One owner's skills folder: mounted read-only at /skills in their sandboxes, written only
here, within the owner's quota."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from sandbox.files import SafeDir
from sandbox.models import FileEntry, MiB
from sandbox.storage import Storage

_guard = threading.Lock()
_writers: dict[str, threading.Lock] = {}  # one per owner: saves check and use the room in turn


def _writer(owner: str) -> threading.Lock:
    with _guard:
        return _writers.setdefault(owner, threading.Lock())


class SkillStore:
    """An owner's skills, persistent across sessions. An owner's saves take turns, so parallel
    uploads cannot each find the whole room free and together pass the quota."""

    def __init__(self, storage: Storage, owner: str, quota_mb: int) -> None:
        self._storage, self.owner, self._quota_mb = storage, owner, quota_mb
        self._dir = SafeDir(storage.skills_dir(owner))

    def save(self, path: str, data: bytes) -> None:
        """Raises UnsafePathError, FileTypeError, QuotaExceededError."""
        with _writer(self.owner):
            self._storage.check_skills_room(self.owner, len(data), self._quota_mb)
            self._dir.write(path, bytes(data), self._quota_mb * MiB)

    def save_chunks(self, path: str, chunks: Iterable[bytes]) -> None:
        """Like `save`, from chunks written as they come, within the room the owner has left.

        Raises:
            UnsafePathError, FileTypeError, QuotaExceededError.
        """
        with _writer(self.owner):
            room = self._storage.skills_room(self.owner, self._quota_mb)
            self._dir.write(path, chunks, room)

    def read(self, path: str) -> bytes:
        """Raises UnsafePathError, NotFoundError, FileTypeError."""
        return self._dir.read(path, self._quota_mb * MiB)

    def list(self) -> list[FileEntry]:
        return self._dir.listing()

    def delete(self, path: str) -> None:
        """Raises UnsafePathError, NotFoundError, FileTypeError."""
        self._dir.delete(path)
