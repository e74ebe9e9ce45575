"""Cuts of text toward the model never leave part of a value: caps, previews, streamed pieces."""

from __future__ import annotations

import re

import pytest

from sandbox import Orchestrator
from sandbox.core.output import LineStream
from sandbox.pii import TOKEN_PATTERN, MasterKeys, Tokenizer
from sandbox.pii.cut import MARGIN, bounded_text, cut_bytes, safe_cut
from tests.unit.conftest import MakeOrc

CARD = "4111 1111 1111 1111"
EMAIL = "maria.gonzalez@example.com"


def tokenizer() -> Tokenizer:
    return Tokenizer.for_session(MasterKeys({"k": b"k" * 32}, "k"), "s1")


@pytest.mark.parametrize("value", [CARD, EMAIL, "+1 415-555-0132"])
def test_a_cut_through_a_value_moves_before_it(value: str) -> None:
    tok = tokenizer()
    text = "paid with " + value + " today"
    for at in range(len("paid with ") + 1, len("paid with ") + len(value)):
        assert safe_cut(tok.findings, text, at) == len("paid with ")
    assert safe_cut(tok.findings, text, 4) == 4  # no value there: the cut stays
    assert safe_cut(tok.findings, text, 10_000) == len(text)


def test_bounded_text_never_shows_part_of_a_card() -> None:
    tok = tokenizer()
    raw = ("x" * 100 + " " + CARD + " end").encode()
    for limit in range(101, len(raw)):
        shown = bounded_text(raw, limit, tok)
        assert len(shown.encode()) <= limit
        # The whole card as its token, or nothing of it: never 15 of its 16 digits.
        assert re.sub(r"\D", "", TOKEN_PATTERN.sub("", shown)) == "", shown
    assert "[CREDIT_CARD_1]" in bounded_text(raw, len(raw), tok)


def test_bounded_text_cuts_on_a_character_without_a_tokenizer() -> None:
    assert bounded_text(("é" * 10).encode(), 5, None) == "éé"
    assert bounded_text(b"abc", 5, None) == "abc"


def test_cut_bytes_counts_utf8_bytes() -> None:
    tok = tokenizer()
    assert cut_bytes(tok.findings, "ü" * 10, 7) == "ü" * 3


def test_streamed_long_lines_never_split_a_value() -> None:
    tok = tokenizer()
    got: list[str] = []
    lines = LineStream(lambda _s, text: got.append(text), tok)
    # No newline: the stream passes on pieces. Put an email across every likely piece edge.
    line = ("y" * 97 + " " + EMAIL + " ") * 400
    data = line.encode()
    for i in range(0, len(data), 3000):
        lines.feed("stdout", data[i : i + 3000])
    lines.flush()
    assert len(got) > 1
    joined = "".join(got)
    assert "@" not in joined and "example.com" not in joined
    assert joined == line.replace(EMAIL, "[EMAIL_1]")
    assert all(len(piece) <= 8192 + 3000 + MARGIN for piece in got)


def test_a_run_cut_by_its_output_cap_shows_no_part_of_an_email(make_orc: MakeOrc) -> None:
    orc = make_orc(limits={"output_bytes": 4096})
    with orc.session(owner="alice") as s:
        for pad in (4096 - 10, 4096 - 20, 4096 - 5):
            r = s.run(f"print('x' * {pad} + ' {EMAIL}')")
            assert r.output_truncated and len(r.stdout.encode()) <= 4096
            assert "@" not in r.stdout and "maria" not in r.stdout
            assert r.stdout.strip("x ") == ""


def test_a_preview_cut_by_max_bytes_shows_no_part_of_a_card(local_orc: Orchestrator) -> None:
    with local_orc.session(owner="alice") as s:
        s.upload("cards.txt", ("x" * 40 + " " + CARD + "\n").encode())
        for n in range(42, 60):
            shown = s.read_text("cards.txt", max_bytes=n)
            assert re.sub(r"\D", "", TOKEN_PATTERN.sub("", shown)) == "", shown
        assert "[CREDIT_CARD_1]" in s.read_text("cards.txt")
