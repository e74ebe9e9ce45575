"""Egress decisions: exact allowlist, DNS on the controller, rebinding refused."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest

from sandbox import egress
from sandbox.audit import AuditKeys, AuditLog
from sandbox.audit_queue import AuditQueue
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
        ("CONNECT", "[::1]:443", ("[::1]", 443, "")),
        ("CONNECT", "api.example.com:65535", ("api.example.com", 65535, "")),
        ("CONNECT", "api.example.com:\u0661\u0662\u0663", None),  # Arabic-Indic digits
        ("CONNECT", "api.example.com:\u00b2", None),  # superscript two: isdigit(), int() fails
        ("CONNECT", "api.example.com:0", None),
        ("CONNECT", "api.example.com:70000", None),
        ("CONNECT", "api.example.com:", None),
        ("CONNECT", "a:b:443", None),
        ("GET", "http://example.com:/", None),
        ("GET", "http://example.com:\u0668\u0660/", None),
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
    records = AuditQueue(log)
    ctx = EgressContext(
        "o",
        "s",
        "e",
        frozenset({"api.example.com:443", "rebind.test:80", "93.184.216.34:443"}),
        private,
    )
    try:
        return asyncio.run(EgressProxy(ctx, records, resolver).decide(host, port))
    finally:
        records.close()
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


def exchange(
    tmp_path: Path, payload: bytes, allow: frozenset[str] = frozenset(), half_close: bool = True
) -> bytes:
    """Send `payload` to a proxy (its audit log is tmp_path/a.log) and return all it answers;
    `half_close` ends the request there (the proxy closes a tunnel whose client does so)."""

    async def talk(path: Path) -> bytes:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            await loop.sock_connect(sock, str(path))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await loop.sock_sendall(sock, payload)  # the proxy may answer before it all
                if half_close:
                    sock.shutdown(socket.SHUT_WR)
            reply = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), 10):
                    reply += chunk
            return reply

    async def main() -> bytes:
        log = AuditLog(tmp_path / "a.log", AuditKeys.load_or_create(tmp_path / "k.json"))
        records = AuditQueue(log)  # closed (flushed) before the log: audit() reads it all
        proxy = EgressProxy(EgressContext("o", "s", "e", allow), records)
        try:
            with tempfile.TemporaryDirectory() as folder:  # short: a socket path is <108 bytes
                await proxy.start(Path(folder) / "egress.sock")
                try:
                    return await talk(Path(folder) / "egress.sock")
                finally:
                    await proxy.stop()
        finally:
            records.close()
            log.close()

    return asyncio.run(main())


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    log = AuditLog(tmp_path / "a.log", AuditKeys.load_or_create(tmp_path / "k.json"))
    try:
        return [r for r in log.read() if r["event"].startswith("egress")]
    finally:
        log.close()


CONNECT = b"CONNECT api.example.com:443 HTTP/1.1\r\n"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            "CONNECT api.example.com:\u0661\u0662\u0663 HTTP/1.1\r\n\r\n".encode(),
            "bad_request_line",
        ),
        (b"CONNECT api.example.com:\xb2 HTTP/1.1\r\n\r\n", "bad_request_line"),
        (b"CONNECT api.example.com:0 HTTP/1.1\r\n\r\n", "bad_target"),
        (b"CONNECT api.example.com:70000 HTTP/1.1\r\n\r\n", "bad_target"),
        (b"CONNECT api.example.com HTTP/1.1\r\n\r\n", "bad_target"),
        (b"GET https://api.example.com/ HTTP/1.1\r\n\r\n", "bad_target"),
        (b"hello\r\n\r\n", "bad_request_line"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "bad_request_line"),
        (b"GET http://a/ HTTP/1.1 extra\r\n\r\n", "bad_request_line"),
        (b"CONNECT " + b"a" * 100_000 + b":443 HTTP/1.1\r\n\r\n", "head_too_large"),
        (CONNECT + b"X-A: 1\r\n" * 5000 + b"\r\n", "head_too_large"),
        (CONNECT + b"A:\r\n" * 150 + b"\r\n", "too_many_headers"),
        (CONNECT + b"Host: a\nX-Smuggled: 1\r\n\r\n", "bad_header"),
        (CONNECT + b"Host: a\r\n folded\r\n\r\n", "bad_header"),
        (CONNECT + b"no colon\r\n\r\n", "bad_header"),
        (CONNECT, "incomplete_head"),
        (b"", "incomplete_head"),
    ],
    ids=[
        "arabic-indic-digits",
        "latin1-superscript-digit",
        "port-0",
        "port-70000",
        "no-port",
        "https-url",
        "garbage-line",
        "tls-hello",
        "four-words",
        "100kb-line",
        "header-bomb-bytes",
        "header-bomb-count",
        "bare-lf-in-header",
        "folded-header",
        "header-without-colon",
        "cut-off-head",
        "empty",
    ],
)
def test_a_malformed_request_is_answered_400_and_audited(
    tmp_path: Path, payload: bytes, reason: str
) -> None:
    reply = exchange(tmp_path, payload, frozenset({"api.example.com:443"}))
    assert reply.startswith(b"HTTP/1.1 400 ")
    [record] = audit(tmp_path)
    assert (record["event"], record["reason"]) == ("egress_refused", reason)
    assert len(record["target"]) <= 200


def test_a_refused_request_records_what_it_asked_for(tmp_path: Path) -> None:
    exchange(tmp_path, "CONNECT api.example.com:\u0661 HTTP/1.1\r\n\r\n".encode())
    exchange(tmp_path, b"CONNECT api.example.com:\xb2 HTTP/1.1\r\n\r\n")
    assert [r["target"] for r in audit(tmp_path)] == [
        "api.example.com:\u0661",
        "api.example.com:\\xb2",
    ]


def test_a_well_formed_request_off_the_list_is_denied_403(tmp_path: Path) -> None:
    reply = exchange(tmp_path, b"CONNECT other.example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 403 ")
    [record] = audit(tmp_path)
    assert (record["event"], record["reason"]) == ("egress_denied", "not_allowlisted")


def test_an_allowed_http_request_is_forwarded_with_its_headers(tmp_path: Path) -> None:
    seen: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        await writer.drain()
        writer.close()

    async def serve() -> tuple[asyncio.AbstractServer, int]:
        server = await asyncio.start_server(upstream, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    loop = asyncio.new_event_loop()
    try:
        server, port = loop.run_until_complete(serve())
        payload = f"GET http://127.0.0.1:{port}/a?b HTTP/1.1\r\nHost: h\r\n\r\n".encode()
        allow = frozenset({f"127.0.0.1:{port}"})
        reply = loop.run_in_executor(None, exchange, tmp_path, payload, allow, False)
        got = loop.run_until_complete(reply)
        server.close()
    finally:
        loop.close()
    assert got.endswith(b"\r\n\r\nhi")
    assert seen == [b"GET /a?b HTTP/1.1\r\nHost: h\r\n\r\n"]


def test_a_failure_inside_one_connection_is_logged_not_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(head: bytes) -> object:
        raise RuntimeError("a bug in the parser")

    monkeypatch.setattr(egress, "_parse_head", broken)
    exchange(tmp_path, b"hello\r\n\r\n")
    assert "egress proxy: a connection of run e failed" in caplog.text
