"""A session's /workspace as the model sees it: names in listings are tokenized like
everything else shown to it, and tokens in the paths it sends back are resolved.

A file named after a customer (`invoices/maria.gonzalez@example.com.pdf`) is PII in a
listing. The model then names that file by the token it saw, so a path's tokens are resolved
by the same rule as tokens in code (sandbox/pii/code.py): a name the box wrote is the box's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from sandbox.exceptions import FileTypeError, NotFoundError, QuotaExceededError, UnsafePathError
from sandbox.files import SafeDir
from sandbox.models import FileEntry
from sandbox.pii import Tokenizer
from sandbox.pii.code import resolve_in_code


class ModelView:
    """The workspace's SafeDir, with paths and names crossing the model's side of PII."""

    def __init__(self, files: SafeDir, tokenizer: Tokenizer | None) -> None:
        self._files, self._tok = files, tokenizer

    def write(self, path: str, data: bytes | Iterable[bytes], max_bytes: int) -> None:
        with self._told(path) as real:
            self._files.write(real, data, max_bytes)

    def read(self, path: str, max_bytes: int, prefix: bool = False) -> bytes:
        with self._told(path) as real:
            return self._files.read(real, max_bytes, prefix=prefix)

    def read_at(self, path: str, offset: int, max_bytes: int) -> tuple[bytes, int]:
        with self._told(path) as real:
            return self._files.read_at(real, offset, max_bytes)

    def delete(self, path: str) -> None:
        with self._told(path) as real:
            self._files.delete(real)

    def listing(self, path: str = "") -> list[FileEntry]:
        with self._told(path) as real:
            entries = self._files.listing(real)
        if self._tok is None:
            return entries
        names = self._tok.tokenize([e.path for e in entries])
        return [e.model_copy(update={"path": n}) for e, n in zip(entries, names, strict=True)]

    @contextlib.contextmanager
    def _told(self, path: str) -> Iterator[str]:
        """The path resolved; an error about it names it as the model did (the resolved one
        holds the real values its tokens stand for)."""
        real = self._path(path)
        try:
            yield real
        except (NotFoundError, FileTypeError, UnsafePathError, QuotaExceededError) as exc:
            if real == path or self._tok is None:
                raise
            raise type(exc)(str(self._tok.tokenize(str(exc)))) from None

    def _path(self, path: str) -> str:
        return resolve_in_code(self._tok, path)
