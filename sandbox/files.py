"""Host-side file access to a workspace or skills folder that sandbox code has written into.

Sandbox code controls everything under the folder and may change it while we look, so we
never resolve a path as a string. Every component is opened relative to its parent's fd
with O_NOFOLLOW; files are opened O_NONBLOCK (a planted FIFO cannot hang us) and must be
regular files with a single link; writes go to a fresh O_EXCL temp file renamed into place,
so a planted link at the target name is replaced, never written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from sandbox.exceptions import (
    FileTypeError,
    NotFoundError,
    QuotaExceededError,
    UnsafePathError,
)
from sandbox.models import FileEntry

Kind = Literal["file", "dir", "symlink", "other"]

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
MAX_DEPTH = 64
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_TMP_PREFIX = ".sbx-upload-"


def split_path(path: str) -> list[str]:
    """Split a relative path into checked components.

    Raises:
        UnsafePathError: the path is empty, absolute, has '..', a NUL byte, or is too long or deep.
    """
    if not isinstance(path, str) or not path:
        raise UnsafePathError("path must be a non-empty string")
    if "\x00" in path:
        raise UnsafePathError("path contains a NUL byte")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise UnsafePathError("path is too long")
    if path.startswith("/"):
        raise UnsafePathError(f"path must be relative to the folder, got {path!r:.80}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafePathError("path names the folder itself")
    for part in parts:
        if part == "..":
            raise UnsafePathError(f"path may not contain '..': {path!r:.80}")
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise UnsafePathError("a path component is longer than 255 bytes")
    if len(parts) > MAX_DEPTH:
        raise UnsafePathError(f"path is deeper than {MAX_DEPTH} levels")
    return parts


class SafeDir:
    """A folder whose content is untrusted, read and written without following links."""

    def __init__(self, root: Path, uid: int | None = None, gid: int | None = None) -> None:
        self.root = root
        self._owner = (uid, gid) if uid is not None and gid is not None else None

    @contextlib.contextmanager
    def _dir_fd(self, parts: list[str], create: bool = False) -> Iterator[int]:
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in parts:
                try:
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise NotFoundError(f"no such folder: {part!r}") from None
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    if self._owner:
                        os.fchown(nxt, *self._owner)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise FileTypeError(
                            f"{part!r} is not a folder (links are not followed)"
                        ) from None
                    raise
                os.close(fd)
                fd = nxt
            yield fd
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _open_file(self, path: str) -> Iterator[tuple[int, os.stat_result]]:
        """A regular file with one link, opened for reading without following links."""
        parts = split_path(path)
        with self._dir_fd(parts[:-1]) as dfd:
            try:
                fd = os.open(parts[-1], _READ_FLAGS, dir_fd=dfd)
            except FileNotFoundError:
                raise NotFoundError(f"no such file: {path!r:.200}") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise FileTypeError(f"{path!r:.200} is a symbolic link; refused") from None
                raise
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise FileTypeError(f"{path!r:.200} is not a regular file")
                if st.st_nlink != 1:
                    raise FileTypeError(f"{path!r:.200} has several hard links; refused")
                os.set_blocking(fd, True)
                yield fd, st
            finally:
                os.close(fd)

    def read(self, path: str, max_bytes: int, prefix: bool = False) -> bytes:
        """Read a regular file; with `prefix`, its first `max_bytes` bytes whatever its size.

        Raises:
            UnsafePathError, NotFoundError, FileTypeError, QuotaExceededError (larger than max_bytes).
        """
        with self._open_file(path) as (fd, st):
            if st.st_size > max_bytes and not prefix:
                raise QuotaExceededError(f"{path!r:.200} is larger than {max_bytes} bytes")
            chunks: list[bytes] = []
            total = 0
            while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - total)):
                chunks.append(chunk)
                total += len(chunk)
                if total > max_bytes:
                    if prefix:
                        return b"".join(chunks)[:max_bytes]
                    raise QuotaExceededError(f"{path!r:.200} is larger than {max_bytes} bytes")
            return b"".join(chunks)

    def read_at(self, path: str, offset: int, max_bytes: int) -> tuple[bytes, int]:
        """At most `max_bytes` of a regular file from byte `offset` on, and the file's size.

        Raises:
            UnsafePathError, NotFoundError, FileTypeError.
        """
        with self._open_file(path) as (fd, st):
            chunks: list[bytes] = []
            total = 0
            while total < max_bytes:
                chunk = os.pread(fd, min(1 << 20, max_bytes - total), offset + total)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            return b"".join(chunks), st.st_size

    def write(self, path: str, data: bytes | Iterable[bytes], max_bytes: int) -> None:
        """Create or replace a regular file, making parent folders as needed. `data` may be
        an iterable of chunks (an upload streamed to disk, never held whole); the file appears
        only once all of it is written within `max_bytes`.

        Raises:
            UnsafePathError, FileTypeError, QuotaExceededError (too large or the folder is full).
        """
        parts = split_path(path)
        chunks: Iterable[bytes] = [data] if isinstance(data, bytes | bytearray) else data
        if isinstance(data, bytes | bytearray) and len(data) > max_bytes:
            raise QuotaExceededError(f"file is larger than {max_bytes} bytes")
        with self._dir_fd(parts[:-1], create=True) as dfd:
            tmp = _TMP_PREFIX + secrets.token_hex(8)
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o644,
                dir_fd=dfd,
            )
            try:
                try:
                    written = 0
                    for chunk in chunks:
                        written += len(chunk)
                        if written > max_bytes:
                            raise QuotaExceededError(f"file is larger than {max_bytes} bytes")
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view) :]
                    if self._owner:
                        os.fchown(fd, *self._owner)
                finally:
                    os.close(fd)
                try:
                    existing = os.stat(parts[-1], dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    existing = None
                if existing is not None and stat.S_ISDIR(existing.st_mode):
                    raise FileTypeError(f"{path!r:.200} is a folder")
                os.rename(tmp, parts[-1], src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException as exc:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dfd)
                if isinstance(exc, OSError) and exc.errno in (
                    errno.ENOSPC,
                    errno.EDQUOT,
                    errno.EFBIG,
                ):
                    raise QuotaExceededError(f"no room for {path!r:.200}: quota reached") from None
                raise

    def delete(self, path: str) -> None:
        """Remove a file or link (never what a link points to).

        Raises:
            UnsafePathError, NotFoundError, FileTypeError (a folder).
        """
        parts = split_path(path)
        with self._dir_fd(parts[:-1]) as dfd:
            try:
                os.unlink(parts[-1], dir_fd=dfd)
            except FileNotFoundError:
                raise NotFoundError(f"no such file: {path!r:.200}") from None
            except IsADirectoryError:
                raise FileTypeError(f"{path!r:.200} is a folder") from None

    def rmdir(self, path: str) -> None:
        """Remove an empty folder (a link in its place is not followed).

        Raises:
            UnsafePathError, NotFoundError, FileTypeError (not a folder, or not empty).
        """
        parts = split_path(path)
        with self._dir_fd(parts[:-1]) as dfd:
            try:
                os.rmdir(parts[-1], dir_fd=dfd)
            except FileNotFoundError:
                raise NotFoundError(f"no such folder: {path!r:.200}") from None
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ENOTEMPTY, errno.EEXIST):
                    raise FileTypeError(f"{path!r:.200} is not an empty folder") from None
                raise

    def listing(self, path: str = "", max_entries: int = 10_000) -> list[FileEntry]:
        """List everything under `path` (recursively), links reported as links and not followed."""
        parts = split_path(path) if path else []
        entries: list[FileEntry] = []
        with self._dir_fd(parts) as dfd:
            self._walk(dfd, "/".join(parts), entries, max_entries, len(parts))
        return entries

    def _walk(self, dfd: int, prefix: str, out: list[FileEntry], limit: int, depth: int) -> None:
        with os.scandir(dfd) as it:
            names = sorted(e.name for e in it)
        for name in names:
            if len(out) >= limit:
                return
            if name.startswith(_TMP_PREFIX):
                continue
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed by sandbox code while we looked
            shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            rel = f"{prefix}/{shown}" if prefix else shown
            mode = st.st_mode
            kind = (
                "dir"
                if stat.S_ISDIR(mode)
                else "file"
                if stat.S_ISREG(mode)
                else "symlink"
                if stat.S_ISLNK(mode)
                else "other"
            )
            out.append(FileEntry(path=rel, kind=kind, size=st.st_size, mtime=st.st_mtime))
            if kind == "dir" and depth < MAX_DEPTH:
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
                except OSError:
                    continue
                try:
                    self._walk(sub, rel, out, limit, depth + 1)
                finally:
                    os.close(sub)
