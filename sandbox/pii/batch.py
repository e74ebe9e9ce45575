"""One pattern scan for all the strings of a structured value.

A JSON record is many short strings; scanning each alone costs more in per-call overhead than
in scanning. A `Batch` collects them while the tokenizer builds its copy (each distinct text
once, its value left in place for now), joins them with a separator no recognizer matches
across (a NUL between blank lines, so no line, cell or word of one string is context for
another), scans once, and then writes each changed value into its slot. A finding that would
cross a separator (none of the built-in patterns can) sends the strings it touches to scans
of their own.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from sandbox.pii.detect import Finding

SEP = "\n\n\x00\n\n"
ALONE = 64 * 1024
"""Strings at least this long are scanned on their own: no overhead left to share."""


class Batch:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.results: list[tuple[str, int]] = []
        """Per text: the tokenized text and how many values it replaced."""
        self.pending = -1
        """The text the value just built waits on (-1: none); `place` takes it."""
        self._index: dict[str, int] = {}
        # Slots waiting for a result, in three flat lists: no object per slot to allocate.
        self._containers: list[Any] = []
        self._slots: list[Any] = []
        self._which: list[int] = []

    def add(self, text: str) -> None:
        """The value just built waits on the scan of `text`."""
        i = self._index.get(text)
        if i is None:
            i = self._index[text] = len(self.texts)
            self.texts.append(text)
        self.pending = i

    def place(self, container: dict[Any, Any] | list[Any], slot: Any) -> None:
        """Record that the value just put at `container[slot]` waits on a scan, if it does."""
        if self.pending >= 0:
            self._containers.append(container)
            self._slots.append(slot)
            self._which.append(self.pending)
            self.pending = -1

    def run(self, detect: Callable[[str], list[Finding]], token: Callable[[str, str], str]) -> None:
        """Scan every text (once, together) and replace its findings by `token(entity, value)`."""
        texts = self.texts
        if len(texts) == 1:
            self.results = [substitute(texts[0], detect(texts[0]), token)]
            return
        starts: list[int] = []
        pos = 0
        for t in texts:
            starts.append(pos)
            pos += len(t) + len(SEP)
        per: list[list[Finding]] = [[] for _ in texts]
        alone: set[int] = set()
        for f in detect(SEP.join(texts)):
            i = bisect.bisect_right(starts, f.start) - 1
            base = starts[i]
            if f.end > base + len(texts[i]):
                alone.update(range(i, bisect.bisect_left(starts, f.end)))
                continue
            per[i].append(Finding(f.start - base, f.end - base, f.entity, f.value))
        self.results = [
            substitute(t, detect(t) if i in alone else per[i], token) for i, t in enumerate(texts)
        ]

    def settle(self) -> int:
        """Write each changed value into its slot; how many values were replaced in all."""
        total = 0
        for container, slot, i in zip(self._containers, self._slots, self._which, strict=True):
            out, n = self.results[i]
            if n:
                container[slot] = out
                total += n
        return total


def substitute(
    text: str, findings: list[Finding], token: Callable[[str, str], str]
) -> tuple[str, int]:
    """`text` with each finding replaced by its token, and how many there were."""
    if not findings:
        return text, 0
    parts: list[str] = []
    pos = 0
    for f in findings:
        parts.append(text[pos : f.start])
        parts.append(token(f.entity, text[f.start : f.end]))
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts), len(findings)
