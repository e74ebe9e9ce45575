"""Cutting text that is going to be tokenized, without ever cutting a value in two.

A cut through the middle of an email or a card number leaves a part that no recognizer
finds: 15 of a card's 16 digits reach the model raw. So a cut (an output cap, a preview's
length, a streamed piece) is moved back to the start of any value that straddles it, judged
on the text around the cut (a margin either side longer than any value the recognizers find
in one line), and only then is the part before it tokenized.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sandbox.pii.tokenizer import Tokenizer

MARGIN = 1024
"""Characters looked at either side of a cut: more than any email, phone, card, IBAN or
address; a longer secret block is cut too, but then is no longer whole enough to be found
either side, so the part before the cut is dropped with it (see `safe_cut`)."""


class _Span(Protocol):
    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


def safe_cut(detect: Callable[[str], Sequence[_Span]], text: str, at: int) -> int:
    """The largest cut at or before `at` that splits no value `detect` finds in `text`."""
    if at >= len(text):
        return len(text)
    lo = max(0, at - MARGIN)
    found = detect(text[lo : at + MARGIN])
    cut = at
    for f in sorted(found, key=lambda f: f.start, reverse=True):
        start, end = lo + f.start, lo + f.end
        if start < cut < end:
            cut = start
    return cut


def cut_bytes(detect: Callable[[str], Sequence[_Span]], text: str, limit: int) -> str:
    """The longest prefix of `text` that is at most `limit` UTF-8 bytes and splits no value."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    at = len(raw[:limit].decode("utf-8", "ignore"))
    return text[: safe_cut(detect, text, at)]


def bounded_text(raw: bytes, limit: int, tokenizer: Tokenizer | None) -> str:
    """Text toward the model from `raw` (read up to `limit` + MARGIN bytes): at most `limit`
    bytes of it, decoded leniently, never cut through a value, PII tokenized."""
    if tokenizer is None:
        return raw[:limit].decode("utf-8", "ignore" if len(raw) > limit else "replace")
    text = cut_bytes(tokenizer.findings, raw.decode("utf-8", "replace"), limit)
    return str(tokenizer.tokenize(text))
