"""Detection: each entity found where it is, hard negatives left alone, both engines agree."""

from __future__ import annotations

import importlib

import pytest

from sandbox.pii import HYPERSCAN, Detector, default_recognizers, detect

ENGINES = ["re", *(["hyperscan"] if HYPERSCAN else [])]

POSITIVE = [
    ("EMAIL", "write to maria.gonzalez@example.com today", "maria.gonzalez@example.com"),
    ("EMAIL", "a+tag@sub.example.co.uk,", "a+tag@sub.example.co.uk"),
    ("PHONE", "call +1 415 555 0132 now", "+1 415 555 0132"),
    ("PHONE", "call (415) 555-0199.", "(415) 555-0199"),
    ("PHONE", "Tel: +49 30 901820", "+49 30 901820"),
    ("PHONE", "ring +33 1 42 68 53 00", "+33 1 42 68 53 00"),
    ("PHONE", "+442079460958 is London", "+442079460958"),
    ("CREDIT_CARD", "card 4111 1111 1111 1111 exp", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "amex 3782-822463-10005", "3782-822463-10005"),
    ("CREDIT_CARD", "mc 5555555555554444.", "5555555555554444"),
    ("IBAN", "IBAN DE89 3704 0044 0532 0130 00 ok", "DE89 3704 0044 0532 0130 00"),
    ("IBAN", "GB82WEST12345698765432", "GB82WEST12345698765432"),
    ("US_SSN", "ssn 536-22-1234", "536-22-1234"),
    ("IP_ADDRESS", "from 81.169.145.42:8080", "81.169.145.42"),
    ("IP_ADDRESS", "v6 2001:db8:85a3::8a2e:370:7334 up", "2001:db8:85a3::8a2e:370:7334"),
    ("SECRET", "aws AKIAIOSFODNN7EXAMPLE key", "AKIAIOSFODNN7EXAMPLE"),
    ("SECRET", "ghp_" + "a1B2" * 9 + " tok", "ghp_" + "a1B2" * 9),
    ("SECRET", "Authorization: Bearer abcDEF123456ghiJKL789xyz", "Bearer abcDEF123456ghiJKL789xyz"),
    ("SECRET", 'API_KEY="Zx9qL2mN8vB4cR7tY1uW"', 'API_KEY="Zx9qL2mN8vB4cR7tY1uW'),
    (
        "SECRET",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ),
    (
        "SECRET",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGcY\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGcY\n-----END RSA PRIVATE KEY-----",
    ),
]

NEGATIVE = [
    "version 2.4.1 and build 1.0.0.12",
    "id 123e4567-e89b-12d3-a456-426614174000",
    "at 2024-03-15 10:30:00 UTC, 15/03/2024",
    "order 4111111111111112 (fails Luhn)",
    "ssn-like 000-12-3456 and 666-12-3456 and 900-12-3456",
    "not an ip 999.1.1.1, time 10:30:45",
    "IBAN-like DE89 3704 0044 0532 0130 01 (bad checksum)",
    "price $1,234.56, zip 94107, total 12345678",
    "an at sign @ alone, user@localhost",
    "password: hunter2",
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("entity", "text", "value"), POSITIVE)
def test_each_entity_is_found_exactly(engine: str, entity: str, text: str, value: str) -> None:
    findings = Detector(engine=engine).detect(text)
    assert [(f.entity, text[f.start : f.end]) for f in findings] == [(entity, value)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("text", NEGATIVE)
def test_hard_negatives_are_left_alone(engine: str, text: str) -> None:
    assert Detector(engine=engine).detect(text) == []


def test_entity_selection_limits_what_is_found() -> None:
    text = "maria@example.com +1 415 555 0132"
    assert [f.entity for f in Detector(entities=["PHONE"]).detect(text)] == ["PHONE"]


def test_offsets_are_characters_not_bytes_in_non_ascii_text() -> None:
    text = "Grüße 🎉 an jörg: joerg@example.de, Tel +49 30 901820"
    found = detect(text)
    assert [text[f.start : f.end] for f in found] == ["joerg@example.de", "+49 30 901820"]


def test_an_entity_across_a_chunk_border_is_found_once(monkeypatch: pytest.MonkeyPatch) -> None:
    detect_mod = importlib.import_module("sandbox.pii.detect")  # the module, not the function
    monkeypatch.setattr(detect_mod, "CHUNK", 1000)
    text = "x " * 495 + "border maria@example.com " + "y " * 600 + "end bob@example.org"
    found = Detector().detect(text)
    assert [text[f.start : f.end] for f in found] == ["maria@example.com", "bob@example.org"]


def test_a_megabyte_with_fifty_thousand_entities_costs_work_linear_in_them() -> None:
    det = Detector()
    calls = 0
    wrapped = det._validators

    def counting(fn):  # type: ignore[no-untyped-def]
        def inner(s: str) -> str | None:
            nonlocal calls
            calls += 1
            return fn(s)  # type: ignore[no-any-return]

        return inner

    det._validators = [counting(v) for v in wrapped]
    text = "".join(f"user{i}@example.com, " for i in range(50_000))[: 1 << 20]
    found = det.detect(text)
    assert len(found) > 40_000
    # One validation per candidate: no re-scanning, no quadratic window overlap.
    assert calls <= 1.1 * len(found)


PRIVATE = ["127.0.0.1", "10.1.2.3", "172.20.0.5", "192.168.10.42", "169.254.169.254", "::1",
           "fe80::42:acff:fe11:2", "fd12:3456:789a::1", "::ffff:10.0.0.7"]  # fmt: skip


@pytest.mark.parametrize("addr", PRIVATE)
def test_loopback_private_and_link_local_addresses_are_not_pii_by_default(addr: str) -> None:
    assert detect(f"listening on {addr} now") == []


@pytest.mark.parametrize("addr", PRIVATE)
def test_private_addresses_are_pii_when_configured(addr: str) -> None:
    det = Detector(default_recognizers(private_ips=True))
    assert [f.entity for f in det.detect(f"listening on {addr} now")] == ["IP_ADDRESS"]


@pytest.mark.parametrize(
    "addr",
    ["0.0.0.0", "255.255.255.0", "224.0.0.251", "ff02::1", "::"],  # noqa: S104 - text to scan, not a bind
)
def test_unspecified_broadcast_netmask_and_multicast_are_never_pii(addr: str) -> None:
    det = Detector(default_recognizers(private_ips=True))
    assert det.detect(f"bind {addr} here") == []


@pytest.mark.parametrize(
    ("entity", "value"),
    [
        ("CREDIT_CARD", "676244110463"),  # Maestro, 12 digits
        ("CREDIT_CARD", "180051097219062"),  # JCB's old 15-digit range
        ("IBAN", "RU0204452560040702810412345678901"),  # Russia joined the registry (33)
        ("IBAN", "GB85UTQF8819789693041"),  # a character short, checksum valid
        (
            "SECRET",
            "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----",
        ),
    ],
)
def test_newer_ranges_and_encodings_are_found(entity: str, value: str) -> None:
    text = f'{{"v": "{value}"}}'
    assert [(f.entity, text[f.start : f.end]) for f in detect(text)] == [(entity, value)]


@pytest.mark.parametrize(
    "text",
    [
        "libsasl2-modules 1.2.5.1-2 amd64",  # a Debian version, not an address
        "openssl 1.1.1.1+deb12u1 and 3.0.11.0~rc1",
        "GB85UTQF8819789693042",  # checksum fails
        "card-like 581399674117",  # 12 digits outside Maestro's own ranges
        "2024-03-15 10:30:00 2024-03-16 11:00:00",  # not a phone from 00 2024-03-16 11
    ],
)
def test_versions_and_near_misses_are_left_alone(text: str) -> None:
    assert detect(text) == []


@pytest.mark.parametrize(
    "text",
    ["1 " * 100_000, "01 02 03 04 05 06 07 08 09 " * 8_000, "7" * 200_000],
    ids=["digits", "pairs", "one run"],
)
def test_runs_of_small_numbers_do_not_each_become_a_candidate(text: str) -> None:
    det = Detector()
    calls = 0

    def counting(fn):  # type: ignore[no-untyped-def]
        def inner(s: str) -> str | None:
            nonlocal calls
            calls += 1
            return fn(s)  # type: ignore[no-any-return]

        return inner

    det._validators = [counting(v) for v in det._validators]
    assert det.detect(text) == []
    assert calls < 1000  # not one (or several) per number in the run
