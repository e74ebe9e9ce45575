"""Egress decisions: exact allowlist, DNS on the controller, rebinding refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sandbox.audit import AuditKeys, AuditLog
from sandbox.egress import EgressContext, EgressProxy, _parse_target


@pytest.mark.parametrize(
    ("method", "target", "parsed"),
    [
        ("CONNECT", "api.example.com:443", ("api.example.com", 443, "")),
        ("GET", "http://Example.com/a?b", ("example.com", 80, "/a?b")),
        ("GET", "http://example.com:8080", ("example.com", 8080, "/")),
        ("GET", "https://example.com/", None),
        ("GET", "/relative", None),
        ("CONNECT", "no-port", None),
        ("GET", "http://user@evil.com/", None),
    ],
)
def test_request_targets_are_parsed_strictly(method: str, target: str, parsed: object) -> None:
    assert _parse_target(method, target) == parsed


def decide(
    tmp_path: Path, host: str, port: int, answers: list[str], private: bool = False
) -> tuple[str | None, str]:
    async def resolver(h: str, p: int) -> list[str]:
        return answers

    log = AuditLog(tmp_path / "a.log", AuditKeys.load_or_create(tmp_path / "k.json"))
    ctx = EgressContext(
        "o",
        "s",
        "e",
        frozenset({"api.example.com:443", "rebind.test:80", "93.184.216.34:443"}),
        private,
    )
    try:
        return asyncio.run(EgressProxy(ctx, log, resolver).decide(host, port))
    finally:
        log.close()


def test_only_listed_host_port_pairs_pass(tmp_path: Path) -> None:
    assert decide(tmp_path, "api.example.com", 443, ["93.184.216.34"]) == (
        "93.184.216.34",
        "allowlisted",
    )
    assert decide(tmp_path, "api.example.com", 80, ["93.184.216.34"])[1] == "not_allowlisted"
    assert decide(tmp_path, "other.example.com", 443, ["93.184.216.34"])[1] == "not_allowlisted"


def test_raw_ips_pass_only_when_listed_as_such(tmp_path: Path) -> None:
    assert decide(tmp_path, "93.184.216.34", 443, []) == ("93.184.216.34", "allowlisted_ip")
    assert decide(tmp_path, "1.1.1.1", 443, [])[1] == "not_allowlisted"


def test_a_listed_name_rebound_to_a_private_address_is_refused(tmp_path: Path) -> None:
    for answer in ("10.0.0.5", "127.0.0.1", "169.254.169.254", "192.168.1.1"):
        assert decide(tmp_path, "rebind.test", 80, [answer]) == (None, "private_address")
    assert decide(tmp_path, "rebind.test", 80, ["10.0.0.5"], private=True) == (
        "10.0.0.5",
        "allowlisted",
    )
