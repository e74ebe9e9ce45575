"""A session's /workspace as the model sees it: names in listings are tokenized like
everything else shown to it, and tokens in the paths it sends back are resolved.

A file named after a customer (`invoices/maria.gonzalez@example.com.pdf`) is PII in a
listing. The model then names that file by the token it saw, so a path's tokens are resolved
by the same rule as tokens in code (sandbox/pii/code.py): a name the box wrote is the box's.
"""

from __future__ import annotations

from collections.abc import Iterable

from sandbox.files import SafeDir
from sandbox.models import FileEntry
from sandbox.pii import Tokenizer
from sandbox.pii.code import resolve_in_code


class ModelView:
    """The workspace's SafeDir, with paths and names crossing the model's side of PII."""

    def __init__(self, files: SafeDir, tokenizer: Tokenizer | None) -> None:
        self._files, self._tok = files, tokenizer

    def write(self, path: str, data: bytes | Iterable[bytes], max_bytes: int) -> None:
        self._files.write(self._path(path), data, max_bytes)

    def read(self, path: str, max_bytes: int, prefix: bool = False) -> bytes:
        return self._files.read(self._path(path), max_bytes, prefix=prefix)

    def read_at(self, path: str, offset: int, max_bytes: int) -> tuple[bytes, int]:
        return self._files.read_at(self._path(path), offset, max_bytes)

    def delete(self, path: str) -> None:
        self._files.delete(self._path(path))

    def listing(self, path: str = "") -> list[FileEntry]:
        entries = self._files.listing(self._path(path))
        if self._tok is None:
            return entries
        names = self._tok.tokenize([e.path for e in entries])
        return [e.model_copy(update={"path": n}) for e, n in zip(entries, names, strict=True)]

    def _path(self, path: str) -> str:
        return resolve_in_code(self._tok, path)
