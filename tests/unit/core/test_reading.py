"""Pages of a workspace file for a model: byte offsets that add up, no value cut in two,
pictures recognised, binary refused, listings in pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import Orchestrator
from sandbox.core.modelview import ModelView
from sandbox.core.reading import image_type, model_listing, page_of, read_for_model
from sandbox.exceptions import FileTypeError, InvalidInputError, QuotaExceededError
from sandbox.files import SafeDir
from sandbox.models import FileEntry


def view(tmp_path: Path) -> ModelView:
    return ModelView(SafeDir(tmp_path), None)


def test_pages_of_a_text_add_up_to_the_file_byte_for_byte(tmp_path: Path) -> None:
    text = "".join(f"line {i} — naïve café ☕\n" for i in range(5000)).encode()
    (tmp_path / "t.txt").write_bytes(text[:-3] + b"\xff\xfe\n")  # one bad byte sequence late on
    got, offset = b"", 0
    while True:
        page = read_for_model(view(tmp_path), None, "t.txt", offset=offset, budget=2000)
        assert page.kind == "text" and page.offset == offset and page.end - offset <= 2000
        got += (tmp_path / "t.txt").read_bytes()[offset : page.end]
        if page.next_offset is None:
            break
        assert page.text.endswith("\n")  # pages end at line ends when one is near
        offset = page.next_offset
    assert got == (tmp_path / "t.txt").read_bytes()
    assert page.text.endswith("\ufffd\ufffd\n")


def test_a_page_of_an_empty_file_is_empty(tmp_path: Path) -> None:
    (tmp_path / "e").write_bytes(b"")
    page = read_for_model(view(tmp_path), None, "e", offset=0, budget=2000)
    assert (page.text, page.size, page.next_offset) == ("", 0, None)


def test_binary_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "b").write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(FileTypeError, match="base64"):
        read_for_model(view(tmp_path), None, "b", offset=0, budget=2000)
    page = read_for_model(view(tmp_path), None, "b", offset=0, budget=2000, encoding="base64")
    assert page.kind == "base64" and page.next_offset is None


def test_a_text_cut_mid_character_by_the_sniff_is_still_text(tmp_path: Path) -> None:
    (tmp_path / "u").write_bytes(("é" * 10_000).encode())
    assert read_for_model(view(tmp_path), None, "u", offset=0, budget=2000).kind == "text"


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"GIF89a", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7", None),
    ],
)
def test_pictures_are_known_by_their_first_bytes(head: bytes, mime: str | None) -> None:
    assert image_type(head) == mime


def test_a_picture_too_big_to_show_is_refused_with_how_to_make_it_smaller(tmp_path: Path) -> None:
    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(5 * 1024 * 1024))
    with pytest.raises(QuotaExceededError, match="save a smaller one"):
        read_for_model(view(tmp_path), None, "big.png", offset=0, budget=2000)


def test_listings_come_in_pages_and_hide_saved_outputs_unless_asked() -> None:
    entries = [FileEntry(path=p, kind="file", size=1, mtime=0) for p in ("a", ".outputs/x", "b")]
    shown = model_listing(entries, "")
    assert [e.path for e in shown] == ["a", "b"]
    assert len(model_listing(entries, ".outputs")) == 3
    page = page_of(shown, 1, 1)
    assert ([e.path for e in page.entries], page.total, page.next_offset) == (["b"], 2, None)
    assert page_of(shown, 0, 1).next_offset == 1
    with pytest.raises(InvalidInputError):
        page_of(shown, -1, 1)


def test_a_value_across_the_end_of_a_page_is_never_shown_in_part(local_orc: Orchestrator) -> None:
    # THREATS M3: the page ends before the card, which the next page shows as a token.
    for shift in range(0, 20, 3):
        text = "x" * (2000 - shift) + " card 4111 1111 1111 1111 paid\n" + "y" * 3000
        with local_orc.session("alice") as s:
            s.upload("pay.txt", text.encode())
            first = read_for_model(s.files, s.tokenizer, "pay.txt", offset=0, budget=2000)
            second = read_for_model(s.files, s.tokenizer, "pay.txt", offset=first.end, budget=2000)
        shown = first.text + second.text
        assert "4111" not in shown and "1111" not in shown, shift
        assert "[CREDIT_CARD_1]" in second.text
