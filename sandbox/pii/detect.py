"""Finding PII in text: anchors in one pass (Hyperscan, or Python `re` without it), precise
patterns and validators only in merged windows around them, overlaps resolved by priority.

Cost is linear in the text: anchor scanning is a single multi-pattern pass, and every
character falls in at most one merged window per recognizer. Strings longer than CHUNK are
scanned chunk by chunk with an overlap longer than any entity, so nothing is split at a border.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import operator
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sandbox.pii.phones import Verdict
from sandbox.pii.recognizers import Recognizer, default_recognizers

try:
    import hyperscan

    HYPERSCAN = True
except ImportError:  # pragma: no cover - exercised where the wheel is missing
    HYPERSCAN = False

CHUNK = 4 * 1024 * 1024
_OVERLAP = 10_000  # longer than the longest entity (a private-key block)


@dataclass(frozen=True, order=True)
class Finding:
    start: int
    end: int
    entity: str
    value: str
    """The validator's normalized form (E.164 phone, compact IBAN, lower-case email...)."""


class Detector:
    """A compiled set of recognizers. Thread-safe after construction: each thread scans with
    its own Hyperscan scratch."""

    def __init__(
        self,
        recognizers: Iterable[Recognizer] | None = None,
        entities: Iterable[str] | None = None,
        engine: str = "auto",
        extra: Iterable[Callable[[str], list[Finding]]] = (),
    ) -> None:
        """`extra` detectors (e.g. `sandbox.pii.presidio.presidio_detector`) add their findings;
        overlaps are resolved with the built-in ones, which win ties."""
        self._extra = list(extra)
        recs = list(recognizers) if recognizers is not None else default_recognizers()
        if entities is not None:
            wanted = set(entities)
            recs = [r for r in recs if r.entity in wanted]
        self.recognizers = recs
        self._precise = [
            re.compile(r.pattern, re.ASCII | (re.IGNORECASE if r.caseless else 0)) for r in recs
        ]
        self._order = sorted(range(len(recs)), key=lambda i: -recs[i].priority)
        self._priority = {r.entity: r.priority for r in recs}
        self._back = [re.compile(f"(?:{r.back})\\Z", re.ASCII) if r.back else None for r in recs]
        # Real text repeats values (the same customer in every record): validate each once.
        self._validators = [functools.lru_cache(maxsize=8192)(r.validate) for r in recs]
        self.engine = "hyperscan" if engine in ("auto", "hyperscan") and HYPERSCAN else "re"
        self._ascii_anchors = all(r.anchor.isascii() for r in recs)
        if self.engine == "hyperscan":
            self._db = hyperscan.Database()
            self._db.compile(
                expressions=[r.anchor.encode() for r in recs],
                ids=list(range(len(recs))),
                flags=[hyperscan.HS_FLAG_CASELESS if r.caseless else 0 for r in recs],
            )
            # A scan needs scratch space no other scan uses at the same time: one per thread,
            # cloned from this one (the database's own would be shared by every tenant).
            self._scratch = hyperscan.Scratch(self._db)
            self._local = threading.local()
        else:
            self._anchors = [
                re.compile(r.anchor, re.ASCII | (re.IGNORECASE if r.caseless else 0)) for r in recs
            ]

    def detect(self, text: str) -> list[Finding]:
        """Every PII finding in `text`, non-overlapping, in order of position."""
        if len(text) <= CHUNK:
            return self._detect(text, 0, len(text))
        found: list[Finding] = []
        for start in range(0, len(text), CHUNK):
            stop = min(len(text), start + CHUNK + _OVERLAP)
            piece = text[max(0, start - _OVERLAP) : stop]
            offset = max(0, start - _OVERLAP)
            for f in self._detect(piece, 0, len(piece)):
                # Each finding belongs to the chunk its start falls in; overlaps only give context.
                if start <= f.start + offset < start + CHUNK:
                    found.append(Finding(f.start + offset, f.end + offset, f.entity, f.value))
        return _resolve(found)

    def _anchor_ends(self, text: str) -> list[list[int]]:
        ends: list[list[int]] = [[] for _ in self.recognizers]
        if self.engine == "re":
            for i, anchor in enumerate(self._anchors):
                ends[i] = [m.end() for m in anchor.finditer(text)]
            return ends
        # ASCII anchors cannot match across a non-ASCII character: scan it as one byte ("?"),
        # so byte offsets are character offsets; else map UTF-8 offsets back.
        ascii_only = self._ascii_anchors
        data = (
            text.encode("ascii", "replace") if ascii_only else text.encode("utf-8", "surrogatepass")
        )

        def on_match(pid: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
            ends[pid].append(end)

        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._scratch.clone()
        self._db.scan(data, match_event_handler=on_match, scratch=scratch)
        if not ascii_only and len(data) != len(text):
            _bytes_to_chars(data, ends)
        return ends

    def _detect(self, text: str, lo: int, hi: int) -> list[Finding]:
        found: list[Finding] = []
        # Bytes set where a higher-priority recognizer already found something: a lower one
        # never validates text claimed there (cheap to test with bytearray.find).
        claimed = bytearray(len(text))
        anchor_ends = self._anchor_ends(text)
        level, pending = None, 0
        for i in self._order:
            rec = self.recognizers[i]
            if rec.priority != level:
                for f in found[pending:]:
                    claimed[f.start : f.end] = b"\x01" * (f.end - f.start)
                level, pending = rec.priority, len(found)
            if anchor_ends[i]:
                self._scan(i, text, anchor_ends[i], lo, hi, claimed, found)
        for detector in self._extra:
            found.extend(f for f in detector(text[lo:hi]) if f.end <= hi - lo)
        return _resolve(found, self._priority)

    def _scan(
        self,
        i: int,
        text: str,
        ends: list[int],
        lo: int,
        hi: int,
        claimed: bytearray,
        found: list[Finding],
    ) -> None:
        """Findings of recognizer `i` around its anchors' `ends`, appended to `found`."""
        rec, pattern, validate = self.recognizers[i], self._precise[i], self._validators[i]
        context: Callable[[int], bool] | None = None
        if rec.anchor_len is not None:
            matches: Iterable[re.Match[str]] = _anchored(
                pattern, text, ends, rec.anchor_len, lo, hi, self._back[i]
            )
            windows = [(lo, hi)]
        else:
            windows = _windows(sorted(ends), rec.lookbehind, rec.max_len, lo, hi)
        shrink, entity, add = rec.shrink, rec.entity, found.append
        for ws, we in windows:
            if rec.anchor_len is None:
                matches = _search_all(pattern, text, ws, we, shrink)
            searcher = matches if isinstance(matches, _Searcher) else None
            # A match at a window edge may be cut short by it: skip those unless the text
            # really ends there (the anchor's own window covers the whole entity).
            edge_s, edge_e = (ws if ws > lo else -1), (we if we < hi else -1)
            for m in matches:
                start, end = m.span()
                if start == edge_s or end == edge_e or claimed.find(1, start, end) >= 0:
                    continue
                hit = m.group()
                value = validate(hit)
                while value is None and shrink:
                    cut = max(hit.rfind(" "), hit.rfind("-"))
                    if cut <= 0:
                        break
                    hit = hit[:cut].rstrip(" -")
                    value = validate(hit)
                if type(value) is Verdict:
                    if value.length is not None:
                        hit = hit[: value.length]
                    if value.weak:
                        if context is None and rec.context is not None:
                            context = rec.context(text)
                        if context is None or not context(start):
                            continue
                    value = str(value)
                if value is not None:
                    add(Finding(start, start + len(hit), entity, value))
                    if searcher is not None:
                        searcher.accepted(start + len(hit))


class _Searcher:
    """Like finditer, but a candidate the validator refused does not hide the ones inside it:
    for recognizers that shrink (cards, phones, IBANs), the search resumes at its next group."""

    def __init__(self, pattern: re.Pattern[str], text: str, lo: int, hi: int) -> None:
        self._p, self._text, self._pos, self._hi = pattern, text, lo, hi
        self._last: re.Match[str] | None = None

    def __iter__(self) -> _Searcher:
        return self

    def __next__(self) -> re.Match[str]:
        if self._last is not None:  # refused: look again from its next separator
            s = self._last
            nxt = min(
                (
                    i
                    for i in (
                        self._text.find(" ", s.start() + 1, s.end()),
                        self._text.find("-", s.start() + 1, s.end()),
                    )
                    if i > 0
                ),
                default=s.end(),
            )
            self._pos = max(self._pos, nxt + 1 if nxt < s.end() else s.end())
        m = self._p.search(self._text, self._pos, self._hi)
        if m is None:
            raise StopIteration
        self._last = m
        self._pos = m.start() + 1
        return m

    def accepted(self, end: int) -> None:
        self._last = None
        self._pos = end


def _search_all(
    pattern: re.Pattern[str], text: str, lo: int, hi: int, resume_inside: bool
) -> Iterator[re.Match[str]]:
    return _Searcher(pattern, text, lo, hi) if resume_inside else pattern.finditer(text, lo, hi)


def _anchored(
    pattern: re.Pattern[str],
    text: str,
    ends: list[int],
    anchor_len: int,
    lo: int,
    hi: int,
    back: re.Pattern[str] | None = None,
) -> list[re.Match[str]]:
    """Try the pattern once where each anchor starts (or where the text `back` matches up to
    the anchor starts); skip anchors inside an earlier match."""
    out: list[re.Match[str]] = []
    covered = lo
    for e in sorted(ends):
        start = e - anchor_len
        if back is not None:
            run = back.search(text, max(covered, start - 65), start)
            if run is None:
                continue
            start = run.start()
        if start < covered:
            continue
        m = pattern.match(text, start, hi)
        if m is not None:
            out.append(m)
            covered = m.end()
    return out


def _windows(ends: list[int], back: int, ahead: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """Merge [end-back-1, end+ahead+1] around each anchor end into disjoint windows."""
    out: list[tuple[int, int]] = []
    cur_s = cur_e = -1
    for e in ends:
        ws, we = e - back - 1, e + ahead + 1
        if ws <= cur_e:
            if we > cur_e:
                cur_e = we
            continue
        if cur_e >= 0:
            out.append((cur_s if cur_s > lo else lo, cur_e if cur_e < hi else hi))
        cur_s, cur_e = ws, we
    if cur_e >= 0:
        out.append((cur_s if cur_s > lo else lo, cur_e if cur_e < hi else hi))
    return out


def _bytes_to_chars(data: bytes, ends: list[list[int]]) -> None:
    """Turn UTF-8 byte offsets into str offsets, in one pass over the text."""
    wanted = sorted({e for lst in ends for e in lst})
    mapping: dict[int, int] = {}
    chars = prev = 0
    for off in wanted:
        chars += len(data[prev:off].decode("utf-8", "surrogatepass"))
        mapping[off] = chars
        prev = off
    for lst in ends:
        lst[:] = [mapping[e] for e in lst]


_span = operator.attrgetter("start", "end")


def _resolve(found: list[Finding], priority: dict[str, int] | None = None) -> list[Finding]:
    """Keep the best of overlapping findings: higher priority, then longer, then earlier."""
    if len(found) < 2:
        return sorted(found)
    found.sort(key=_span)
    if all(a.end <= b.start for a, b in itertools.pairwise(found)):
        return found  # the usual case: nothing to resolve
    prio = priority or {}
    ranked = sorted(set(found), key=lambda f: (-prio.get(f.entity, 0), -(f.end - f.start), f.start))
    starts: list[int] = []
    kept: list[Finding] = []
    for f in ranked:
        i = bisect.bisect_right(starts, f.start)
        if i and kept[i - 1].end > f.start:
            continue
        if i < len(kept) and kept[i].start < f.end:
            continue
        starts.insert(i, f.start)
        kept.insert(i, f)
    return kept


_default: Detector | None = None


def detect(text: str) -> list[Finding]:
    """Find PII in `text` with the default recognizers."""
    global _default
    if _default is None:
        _default = Detector()
    return _default.detect(text)
