"""Egress allowlist: an HTTP proxy on a run's own Unix socket, for profiles with network "allowlist".

The sandbox keeps `network=none`. Its runtime relays 127.0.0.1:3128 (inside the box) to
`/run/sbx/egress.sock`, served here: a `CONNECT host:port` or an absolute-URI request
(`GET http://host:port/...`) is allowed only if `host:port` is on the profile's list, exactly.
DNS is resolved here, on the controller side; an allowed *name* that resolves to a private,
loopback or link-local address is refused (DNS rebinding) unless the profile allows private
targets. Raw IPs pass only when listed as such. Every decision is audited.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.audit import AuditLog

Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_HEAD = 16 * 1024
MAX_CONNECTIONS = 16
IDLE_S = 60.0


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass
class EgressContext:
    owner: str
    session: str
    exec_id: str
    allow: frozenset[str]
    allow_private: bool = False


class EgressProxy:
    """One run's proxy; lives on the bridge's event loop."""

    def __init__(self, ctx: EgressContext, audit: AuditLog, resolver: Resolver = _resolve) -> None:
        self.ctx, self._audit, self._resolver = ctx, audit, resolver
        self._server: asyncio.AbstractServer | None = None
        self._active = 0

    async def start(self, path: Path) -> None:
        self._server = await asyncio.start_unix_server(self._handle, path=str(path))
        path.chmod(0o666)  # the folder name is a 128-bit secret and the socket is per run

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def _record(self, event: str, **fields: object) -> None:
        self._audit.record(
            event,
            owner=self.ctx.owner,
            session=self.ctx.session,
            exec_id=self.ctx.exec_id,
            **fields,
        )

    async def decide(self, host: str, port: int) -> tuple[str | None, str]:
        """(address to connect to, or None) and the reason."""
        target = f"{host}:{port}"
        if target not in self.ctx.allow:
            return None, "not_allowlisted"
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            return str(literal), "allowlisted_ip"
        try:
            addresses = await asyncio.wait_for(self._resolver(host, port), 5)
        except (OSError, TimeoutError):
            return None, "dns_failed"
        for addr in addresses:
            ip = ipaddress.ip_address(addr)
            if (
                ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
            ) and not self.ctx.allow_private:
                return None, "private_address"
            return addr, "allowlisted"
        return None, "dns_failed"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._active >= MAX_CONNECTIONS:
            await _reply(writer, 429, "too many connections")
            return
        self._active += 1
        started = time.monotonic()
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                await _reply(writer, 400, "bad request")
                return
            if len(head) > MAX_HEAD:
                await _reply(writer, 431, "request head too large")
                return
            line, _, rest = head.partition(b"\r\n")
            parts = line.decode("latin-1").split()
            if len(parts) != 3:
                await _reply(writer, 400, "bad request line")
                return
            method, target, version = parts
            parsed = _parse_target(method, target)
            if parsed is None:
                self._record("egress_denied", target=target[:200], reason="unsupported_request")
                await _reply(writer, 400, "only CONNECT host:port and http:// URLs are proxied")
                return
            host, port, path = parsed
            address, reason = await self.decide(host, port)
            if address is None:
                self._record("egress_denied", host=host[:253], port=port, reason=reason)
                await _reply(writer, 403, f"egress to {host}:{port} is not allowed ({reason})")
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(address, port), 10
                )
            except (OSError, TimeoutError):
                self._record("egress_denied", host=host[:253], port=port, reason="connect_failed")
                await _reply(writer, 502, "upstream connection failed")
                return
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
            else:
                up_writer.write(f"{method} {path} {version}\r\n".encode("latin-1") + rest)
            sent, received = await _pipe(reader, writer, up_reader, up_writer)
            self._record(
                "egress",
                host=host[:253],
                port=port,
                method=method,
                bytes_out=sent,
                bytes_in=received,
                duration_ms=round((time.monotonic() - started) * 1000, 1),
            )
        finally:
            self._active -= 1
            with contextlib.suppress(Exception):
                writer.close()


def _parse_target(method: str, target: str) -> tuple[str, int, str] | None:
    if method == "CONNECT":
        host, sep, port = target.rpartition(":")
        return (host.lower(), int(port), "") if sep and port.isdigit() and host else None
    if not target.startswith("http://"):
        return None
    rest = target[len("http://") :]
    authority, slash, path = rest.partition("/")
    host, sep, port = authority.rpartition(":")
    if not sep or not port.isdigit():
        host, port = authority, "80"
    if not host or "@" in host:
        return None
    return host.lower(), int(port), "/" + path if slash else "/"


async def _reply(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = message.encode()
    writer.write(
        f"HTTP/1.1 {status} Refused\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(Exception):
        await writer.drain()


async def _pipe(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> tuple[int, int]:
    counts = [0, 0]

    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, i: int) -> None:
        try:
            while data := await asyncio.wait_for(src.read(65536), IDLE_S):
                counts[i] += len(data)
                dst.write(data)
                await dst.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()

    await asyncio.gather(copy(a_reader, b_writer, 0), copy(b_reader, a_writer, 1))
    return counts[0], counts[1]
