"""Program output is not PII: compiler errors, traces, logs and tool output come out unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.pii import HYPERSCAN, Detector, detect

ENGINES = ["re", *(["hyperscan"] if HYPERSCAN else [])]
OUTPUTS = sorted((Path(__file__).parents[2] / "data" / "pii" / "program_output").glob("*.txt"))


def test_the_negative_corpus_is_there() -> None:
    assert len(OUTPUTS) >= 8


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("path", OUTPUTS, ids=lambda p: p.stem)
def test_real_program_output_has_no_findings(engine: str, path: Path) -> None:
    text = path.read_text()
    found = [(f.entity, text[f.start : f.end]) for f in Detector(engine=engine).detect(text)]
    assert found == []


@pytest.mark.parametrize(
    "text",
    [
        "error[E0425]: cannot find value in std::io::Result; Foo::bar()",
        "0::/",
        "0::/system.slice/docker-3f2a.scope",
        "std::vector<std::string>::iterator it = v.begin();",
        "undefined method `call' for Foo::Bar::Baz (NoMethodError)",
        "PHP Fatal error: Uncaught Error: Call to undefined method App\\Http::dead::beef()",
        "Can't locate object method via package My::App::Worker at lib/x.pm line 12.",
        "xs = a[1::2] + b[::2] + c[::-1]",
        "link/ether 02:42:ac:11:00:02 brd ff:ff:ff:ff:ff:ff",
        "eui64 00:11:22:33:44:55:66:77 and fingerprint 16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48",
        "at 10:30:00 and 12:34:56.789, aspect 16:9",
        "print('127.0.0.1'); listen [::1]:8080 and 0.0.0.0:80",
    ],
)
def test_program_text_with_colons_is_not_an_address(text: str) -> None:
    assert detect(text) == []


def test_a_real_address_inside_program_text_is_still_found() -> None:
    text = "thread 'main' panicked: connect [2a00:1450:4001:82b::200e]:443 failed (std::io::Error)"
    assert [text[f.start : f.end] for f in detect(text)] == ["2a00:1450:4001:82b::200e"]
