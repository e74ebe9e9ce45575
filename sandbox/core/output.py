"""Streamed output: chunks from the box turned into whole lines, tokenized per line."""

from __future__ import annotations

import codecs
from collections.abc import Callable

from sandbox.pii import Tokenizer
from sandbox.pii.cut import MARGIN, safe_cut


class LineStream:
    """Turns output chunks into whole lines for a streaming caller, tokenized per line so a
    value never straddles two chunks. A line longer than 8 KiB is passed on in pieces, each
    cut before any value that crosses its end (the last `MARGIN` characters wait for more)."""

    _MAX_HOLD = 8192

    def __init__(self, sink: Callable[[str, str], None], tokenizer: Tokenizer | None) -> None:
        self._sink, self._tok = sink, tokenizer
        self._decoders = {
            s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")
        }
        self._held = {"stdout": "", "stderr": ""}

    def feed(self, stream: str, data: bytes) -> None:
        text = self._held[stream] + self._decoders[stream].decode(data)
        cut = text.rfind("\n") + 1
        if cut == 0 and len(text) > self._MAX_HOLD:
            cut = self._piece_end(text)
        self._held[stream] = text[cut:]
        if cut:
            self._emit(stream, text[:cut])

    def flush(self) -> None:
        for stream in ("stdout", "stderr"):
            rest = self._held[stream] + self._decoders[stream].decode(b"", final=True)
            self._held[stream] = ""
            if rest:
                self._emit(stream, rest)

    def _piece_end(self, text: str) -> int:
        at = len(text) - MARGIN
        if self._tok is None:
            return at
        cut = safe_cut(self._tok.findings, text, at)
        # A value longer than a piece (a key block) is cut anyway: held text stays bounded.
        return cut if cut > 0 else at

    def _emit(self, stream: str, text: str) -> None:
        self._sink(stream, self._tok.tokenize(text) if self._tok is not None else text)
