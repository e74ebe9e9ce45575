"""Files and listings as a model is shown them: a page at a time, within a budget.

`read_for_model` pages through a workspace file by byte offset. Text comes back PII
tokenized, at most `budget` bytes of it, never cut through a value, and says where the next
page starts; a picture (PNG, JPEG, GIF, WebP) comes back as an image; anything else that is
not UTF-8 text is refused with what to do instead, or given as base64 when asked and when
no personal data can be found in it (base64 would carry it past the tokenizer). Pixels are
not scanned: a picture the code drew from real values shows them.

`page_of` cuts a listing into pages (offset, limit, total).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Literal

from sandbox.core.modelview import ModelView
from sandbox.core.outputs import OUTPUTS_DIR
from sandbox.exceptions import FileTypeError, InvalidInputError, QuotaExceededError
from sandbox.models import FileEntry
from sandbox.pii import Tokenizer
from sandbox.pii.cut import MARGIN, safe_cut

MAX_IMAGE_BYTES = 4 * 1024 * 1024
_SNIFF = 8192
_IMAGES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
# Lone surrogates (bytes that are not UTF-8) shown as U+FFFD, one character for one: positions
# in the shown text stay positions in the file's bytes.
_SHOWN = {c: 0xFFFD for c in range(0xDC80, 0xDD00)}
_LINE_SLACK = 512  # a page ends at a line end this close before its budget


@dataclass(frozen=True)
class FileRead:
    """One page of a file for a model: text (tokenized), an image, or base64."""

    path: str
    kind: Literal["text", "image", "base64"]
    size: int
    offset: int
    end: int
    """Byte offset just past what this page holds."""
    text: str = ""
    data: bytes = b""
    mime: str = ""

    @property
    def next_offset(self) -> int | None:
        return self.end if self.end < self.size else None


@dataclass(frozen=True)
class Page:
    """Entries `offset` to `offset + len(entries)` of a listing of `total`."""

    entries: list[FileEntry]
    total: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.entries)
        return end if end < self.total else None


def model_listing(entries: list[FileEntry], path: str) -> list[FileEntry]:
    """A listing as a model is shown it: saved outputs (`.outputs/`) only when asked for."""
    if path.strip("/").startswith(OUTPUTS_DIR):
        return entries
    return [e for e in entries if not e.path.startswith(OUTPUTS_DIR + "/")]


def page_of(entries: list[FileEntry], offset: int, limit: int) -> Page:
    """One page of a listing.

    Raises:
        InvalidInputError: a negative offset or a limit below 1.
    """
    if offset < 0 or limit < 1:
        raise InvalidInputError("offset must be 0 or more and limit 1 or more")
    return Page(entries[offset : offset + limit], len(entries), offset)


def image_type(head: bytes) -> str | None:
    """The MIME type of a picture a model can be shown, from its first bytes."""
    for magic, mime in _IMAGES:
        if head.startswith(magic):
            return mime
    return "image/webp" if head[:4] == b"RIFF" and head[8:12] == b"WEBP" else None


def _is_text(sample: bytes, whole: bool) -> bool:
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A character cut by the sample's end is not a fault; anything else is.
        return not whole and exc.start >= len(sample) - 3
    return True


def read_for_model(
    files: ModelView,
    tokenizer: Tokenizer | None,
    path: str,
    *,
    offset: int,
    budget: int,
    encoding: Literal["text", "base64"] = "text",
) -> FileRead:
    """A page of `path` for a model (see the module docstring).

    Raises:
        UnsafePathError, NotFoundError: as for any read.
        FileTypeError: not a regular file, or binary and not asked for as base64.
        QuotaExceededError: a picture larger than MAX_IMAGE_BYTES.
        InvalidInputError: a negative offset; base64 of data holding personal data.
    """
    if offset < 0:
        raise InvalidInputError("offset must be 0 or more")
    head, size = files.read_at(path, 0, _SNIFF)
    mime = image_type(head)
    if mime is not None and offset == 0 and encoding == "text":
        if size > MAX_IMAGE_BYTES:
            raise QuotaExceededError(
                f"{path} is a {size:,}-byte picture; pictures up to {MAX_IMAGE_BYTES:,} bytes "
                "are shown: save a smaller one (fewer pixels, lower dpi, JPEG)"
            )
        data, size = files.read_at(path, 0, MAX_IMAGE_BYTES)
        return FileRead(path, "image", size, 0, len(data), data=data, mime=mime)
    if encoding == "base64":
        return _base64_page(files, tokenizer, path, offset, budget)
    if not _is_text(head, whole=size <= _SNIFF):
        raise FileTypeError(
            f"{path} is binary ({size:,} bytes), not UTF-8 text: read it from code in "
            "execute_code (e.g. with the module for its format), or ask for encoding='base64'"
        )
    return _text_page(files, tokenizer, path, offset, budget)


def _text_page(
    files: ModelView, tokenizer: Tokenizer | None, path: str, offset: int, budget: int
) -> FileRead:
    raw, size = files.read_at(path, offset, budget + MARGIN)
    text = raw.decode("utf-8", "surrogateescape")
    shown = text.translate(_SHOWN)
    at = len(text)
    if len(raw) > budget:
        at = len(raw[:budget].decode("utf-8", "surrogateescape"))
        if tokenizer is not None:
            # A value longer than a page (a key block) is cut anyway, as streamed output is.
            at = safe_cut(tokenizer.findings, shown, at) or at
        nl = shown.rfind("\n", max(0, at - _LINE_SLACK), at)
        at = nl + 1 if nl >= 0 else at
    end = offset + len(text[:at].encode("utf-8", "surrogateescape"))
    page = shown[:at]
    return FileRead(
        path,
        "text",
        size,
        offset,
        end,
        text=str(tokenizer.tokenize(page)) if tokenizer is not None else page,
    )


def _base64_page(
    files: ModelView, tokenizer: Tokenizer | None, path: str, offset: int, budget: int
) -> FileRead:
    raw, size = files.read_at(path, offset, budget // 4 * 3)
    if tokenizer is not None and tokenizer.findings(raw.decode("latin-1")):
        raise InvalidInputError(
            f"{path} holds personal data, which base64 would carry past the tokenizer: "
            "read it from code in execute_code instead"
        )
    data = base64.b64encode(raw).decode("ascii")
    return FileRead(path, "base64", size, offset, offset + len(raw), text=data)
