"""What a model is shown of a run: the head and tail of each stream within a budget.

A model's context is small and a flood is not news: `print('z' * 3_000_000)` must not come
back as 3 MB. So a result for a model keeps the start and the end of each stream (where
headers and tracebacks are) and says, in plain words where the text was cut, how much was
left out and where the whole stream is: the core saves every stream that a budget could cut
into the session's workspace (sandbox/core/outputs.py), so code can read it and `read_file`
can page through it.

The budget is for the run's streams together; a stream shorter than half the budget is
never cut, so one that is at most `SAVE_OVER` characters long needs no saved copy. The text
is cut after PII tokenization (a cut can then expose no part of a value) and never through
a token such as `[EMAIL_1]`; a cut near a line end moves to it.
"""

from __future__ import annotations

from sandbox.exceptions import InvalidInputError
from sandbox.models import RunResult
from sandbox.pii.tokenizer import TOKEN_PATTERN

MIN_BUDGET = 2_000
MAX_BUDGET = 1_000_000
SAVE_OVER = MIN_BUDGET // 2
"""Streams longer than this many characters are saved: no budget can cut a shorter one."""
STREAMS = ("stdout", "stderr")
_LINE_SLACK = 0.1  # a cut moves to a line end that is within this share of the kept part


def checked_budget(budget: int) -> int:
    """`budget` if it is a whole number of characters in [MIN_BUDGET, MAX_BUDGET].

    Raises:
        InvalidInputError: it is not.
    """
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise InvalidInputError(f"budget must be a whole number of characters, got {budget!r:.40}")
    if not MIN_BUDGET <= budget <= MAX_BUDGET:
        raise InvalidInputError(f"budget must be in [{MIN_BUDGET}, {MAX_BUDGET}], got {budget}")
    return budget


def shares(lengths: dict[str, int], budget: int) -> dict[str, int]:
    """Characters each stream may keep so that together they stay within `budget`: a stream
    that fits in an even share keeps all of it and leaves the rest to the others."""
    left, out = budget, {}
    pending = sorted(lengths, key=lambda s: lengths[s])
    while pending:
        even = left // len(pending)
        name = pending.pop(0)
        out[name] = min(lengths[name], even) if pending else min(lengths[name], left)
        left -= out[name]
    return out


def head_tail(text: str, keep: int) -> tuple[str, str]:
    """The start and the end of `text`, together about `keep` characters (all of it if it
    fits): cut at line ends where one is near, never through a PII token."""
    if len(text) <= keep:
        return text, ""
    head_n = keep // 2
    tail_n = keep - head_n
    slack = int(keep * _LINE_SLACK / 2)
    head_end = _outside_token(text, _line_end_before(text, head_n, slack))
    tail_start = _outside_token(text, _line_start_after(text, len(text) - tail_n, slack))
    return text[:head_end], text[max(tail_start, head_end) :]


def _line_end_before(text: str, at: int, slack: int) -> int:
    nl = text.rfind("\n", max(0, at - slack), at)
    return nl + 1 if nl >= 0 else at


def _line_start_after(text: str, at: int, slack: int) -> int:
    nl = text.find("\n", at, at + slack)
    return nl + 1 if nl >= 0 else at


def _outside_token(text: str, at: int) -> int:
    """`at`, or the start of the token it falls inside."""
    lo = max(0, at - 48)
    for m in TOKEN_PATTERN.finditer(text, lo, min(len(text), at + 48)):
        if m.start() < at < m.end():
            return m.start()
    return at


def marker(stream: str, text: str, head: str, tail: str, saved: str | None) -> str:
    """The plain words that stand where a stream was cut."""
    left_out = text[len(head) : len(text) - len(tail)]
    lines = left_out.count("\n")
    where = (
        f"the whole {stream} is in {saved} (read_file pages through it)"
        if saved
        else f"the whole {stream} could not be saved (workspace full, or saving is off)"
    )
    return f"\n[... {len(left_out):,} characters ({lines:,} lines) of {stream} left out; {where} ...]\n"


def budgeted(result: RunResult, budget: int) -> RunResult:
    """`result` with its streams cut to `budget` characters together (plus the markers) and
    `omitted` saying how many characters of each were left out.

    Raises:
        InvalidInputError: the budget is out of range.
    """
    checked_budget(budget)
    texts = {s: getattr(result, s) for s in STREAMS}
    keep = shares({s: len(t) for s, t in texts.items()}, budget)
    update: dict[str, object] = {}
    omitted: dict[str, int] = {}
    for stream, text in texts.items():
        if len(text) <= keep[stream]:
            continue
        head, tail = head_tail(text, keep[stream])
        saved = result.outputs.get(stream)
        update[stream] = head + marker(stream, text, head, tail, saved) + tail
        omitted[stream] = len(text) - len(head) - len(tail)
    if not omitted:
        return result
    update["omitted"] = omitted
    return result.model_copy(update=update)
