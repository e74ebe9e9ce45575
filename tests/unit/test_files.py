"""Host-side file access never follows what sandbox code planted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.exceptions import FileTypeError, NotFoundError, QuotaExceededError, UnsafePathError
from sandbox.files import SafeDir, split_path


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../b",
        "a/..",
        "a\x00.txt",
        "x" * 256,
        "a/" * 65 + "b",
        "/" + "a" * 10,
        ".",
        "./",
        "a/" * 2100,
    ],
)
def test_unsafe_paths_are_rejected(bad: str) -> None:
    with pytest.raises(UnsafePathError):
        split_path(bad)


def test_plain_relative_paths_are_split() -> None:
    assert split_path("data/./in.csv") == ["data", "in.csv"]
    assert split_path("a//b/") == ["a", "b"]


def test_percent_encoded_dots_are_just_a_name(tmp_path: Path) -> None:
    # We decode nothing: '%2e%2e' is a literal name and stays inside the folder.
    d = SafeDir(tmp_path)
    d.write("%2e%2e/x", b"1", 10)
    assert (tmp_path / "%2e%2e" / "x").read_bytes() == b"1"


def test_symlink_to_a_host_file_is_refused_on_read(tmp_path: Path) -> None:
    (tmp_path / "out.txt").symlink_to("/etc/passwd")
    with pytest.raises(FileTypeError):
        SafeDir(tmp_path).read("out.txt", 1 << 20)


def test_symlinked_folder_is_not_walked_through(tmp_path: Path) -> None:
    (tmp_path / "d").symlink_to("/etc")
    d = SafeDir(tmp_path)
    with pytest.raises(FileTypeError):
        d.read("d/passwd", 1 << 20)
    with pytest.raises(FileTypeError):
        d.write("d/pwned", b"x", 10)
    assert not Path("/etc/pwned").exists()


def test_write_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    target = tmp_path.parent / f"{tmp_path.name}-outside"
    target.write_text("original")
    (tmp_path / "f").symlink_to(target)
    SafeDir(tmp_path).write("f", b"new", 10)
    assert target.read_text() == "original"
    assert not (tmp_path / "f").is_symlink()
    assert (tmp_path / "f").read_bytes() == b"new"


def test_hardlinked_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("secret")
    os.link(tmp_path / "a", tmp_path / "b")
    with pytest.raises(FileTypeError):
        SafeDir(tmp_path).read("b", 100)


def test_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(FileTypeError):
        SafeDir(tmp_path).read("pipe", 100)


def test_folder_is_not_read_as_a_file(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(FileTypeError):
        SafeDir(tmp_path).read("d", 100)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        SafeDir(tmp_path).read("nope", 100)
    with pytest.raises(NotFoundError):
        SafeDir(tmp_path).read("no/such/dir", 100)


def test_file_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(QuotaExceededError):
        SafeDir(tmp_path).read("big", 100)
    with pytest.raises(QuotaExceededError):
        SafeDir(tmp_path).write("big2", b"x" * 101, 100)
    assert not (tmp_path / "big2").exists()


def test_write_creates_parents_and_leaves_no_temp_files(tmp_path: Path) -> None:
    d = SafeDir(tmp_path)
    d.write("a/b/c.txt", b"hello", 100)
    assert (tmp_path / "a" / "b" / "c.txt").read_bytes() == b"hello"
    assert [e.path for e in d.listing()] == ["a", "a/b", "a/b/c.txt"]


def test_listing_reports_links_as_links_and_escapes_odd_names(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/")
    bad = os.fsencode(tmp_path) + b"/bad\xffname\n"
    with open(bad, "wb") as fh:
        fh.write(b"1")
    entries = {e.path: e for e in SafeDir(tmp_path).listing()}
    assert entries["link"].kind == "symlink"
    assert "bad\\xffname\n" in entries
    assert all(not p.startswith("link/") for p in entries)  # never walked into


def test_delete_removes_a_link_not_its_target(tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-keep"
    outside.write_text("keep")
    (tmp_path / "l").symlink_to(outside)
    SafeDir(tmp_path).delete("l")
    assert outside.read_text() == "keep"
    with pytest.raises(NotFoundError):
        SafeDir(tmp_path).delete("l")
