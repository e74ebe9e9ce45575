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
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from sandbox.audit_queue import AuditQueue

logger = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]
MAX_HEAD = 16 * 1024
MAX_HEADERS = 100
MAX_CONNECTIONS = 16
HEAD_TIMEOUT_S = 10.0
IDLE_S = 60.0
_SHOWN = 200  # characters of a refused request kept in its audit record

_REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) ([\x21-\x7e]{1,8192}) (HTTP/1\.[01])")
_HEADER = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]{1,256}:[\t\x20-\x7e\x80-\xff]*")
_HOST = re.compile(r"[a-z0-9._-]{1,253}|\[[0-9a-f:.]{2,45}\]")
_PORT = re.compile(r"[0-9]{1,5}")  # not int()'s idea of a digit: '١٢٣' and '²' are not ports


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

    def __init__(
        self, ctx: EgressContext, records: AuditQueue, resolver: Resolver = _resolve
    ) -> None:
        # Records are written by the queue's thread, never on the loop this proxy shares with
        # every tenant's tool calls; refusals are aggregated (one record per kind and second).
        self.ctx, self._records, self._resolver = ctx, records, resolver
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
        self._records.put(
            event,
            owner=self.ctx.owner,
            session=self.ctx.session,
            exec_id=self.ctx.exec_id,
            **fields,
        )

    def _refused(self, event: str, reason: str, **sample: str | int | None) -> None:
        """A refusal, aggregated on the run and the reason; what the box asked for (host,
        target) is kept as a sample, so a box choosing targets cannot multiply records."""
        ctx = self.ctx
        fields = {"owner": ctx.owner, "session": ctx.session, "exec_id": ctx.exec_id}
        self._records.count(event, {**fields, "reason": reason}, sample)

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
            _close(writer)
            return
        self._active += 1
        try:
            await self._serve(reader, writer)
        except Exception:  # the top of one connection's handler: log it, keep serving the rest
            logger.exception("egress proxy: a connection of run %s failed", self.ctx.exec_id)
        finally:
            self._active -= 1
            _close(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started = time.monotonic()
        head, problem = await _read_head(reader)
        request = _parse_head(head) if problem is None else problem
        if isinstance(request, str):
            # Answered first: a refusal is safe to send even when its record cannot be written.
            await _reply(writer, 400, f"malformed request ({request})")
            self._refused("egress_refused", request, target=_shown(head))
            return
        host, port = request.host, request.port
        address, reason = await self.decide(host, port)
        if address is None:
            self._refused("egress_denied", reason, host=host[:200], port=port)
            await _reply(writer, 403, f"egress to {host}:{port} is not allowed ({reason})")
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(address, port), 10
            )
        except (OSError, TimeoutError):
            self._refused("egress_denied", "connect_failed", host=host[:200], port=port)
            await _reply(writer, 502, "upstream connection failed")
            return
        if request.method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            line = f"{request.method} {request.path} {request.version}\r\n"
            up_writer.write(line.encode("ascii") + request.rest)
        sent, received = await _pipe(reader, writer, up_reader, up_writer)
        self._record(
            "egress",
            host=host,
            port=port,
            method=request.method,
            bytes_out=sent,
            bytes_in=received,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )


class _Request(NamedTuple):
    method: str
    host: str
    port: int
    path: str
    version: str
    rest: bytes
    """The header lines and the blank line after them, forwarded as they came."""


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, str | None]:
    """The request head with its blank line; or what came of it, and why it is not one."""
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S), None
    except asyncio.LimitOverrunError:
        return await reader.read(MAX_HEAD), "head_too_large"  # already buffered: no wait
    except asyncio.IncompleteReadError as exc:
        return exc.partial, "incomplete_head"
    except TimeoutError:
        return b"", "head_timeout"
    except OSError:
        return b"", "connection_lost"


def _parse_head(head: bytes) -> _Request | str:
    """The request in `head`, or the reason it is malformed."""
    if len(head) > MAX_HEAD:
        return "head_too_large"
    line, _, rest = head.partition(b"\r\n")
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        return "bad_request_line"
    headers = rest[:-4].split(b"\r\n") if rest != b"\r\n" else []
    if len(headers) > MAX_HEADERS:
        return "too_many_headers"
    if not all(_HEADER.fullmatch(h) for h in headers):
        return "bad_header"
    method, target, version = (g.decode("ascii") for g in match.groups())
    parsed = _parse_target(method, target)
    if parsed is None:
        return "bad_target"
    return _Request(method, *parsed, version, rest)


def _parse_target(method: str, target: str) -> tuple[str, int, str] | None:
    """(host, port, path) of `CONNECT host:port` or `METHOD http://host[:port]/path`."""
    if method == "CONNECT":
        authority = _authority(target, None)
        return (*authority, "") if authority else None
    if not target.startswith("http://"):
        return None
    rest = target[len("http://") :]
    netloc, slash, path = rest.partition("/")
    authority = _authority(netloc, 80)
    return (*authority, "/" + path if slash else "/") if authority else None


def _authority(text: str, default_port: int | None) -> tuple[str, int] | None:
    """(host, port) of 'host:port' or '[v6]:port'; a port is 1 to 5 ASCII digits, 1-65535."""
    if text.endswith("]") or ":" not in text:
        host, port = text, default_port
    else:
        host, _, digits = text.rpartition(":")
        port = int(digits) if _PORT.fullmatch(digits) else None
    host = host.lower()
    if port is None or not 1 <= port <= 65535 or not _HOST.fullmatch(host):
        return None
    return host, port


def _shown(head: bytes) -> str:
    """What a refused request asked for, for its audit record: its target, else its first
    line, cut short."""
    line = head.partition(b"\r\n")[0][: 4 * _SHOWN]
    words = line.split(b" ")
    return (words[1] if len(words) == 3 else line).decode("utf-8", "backslashreplace")[:_SHOWN]


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


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
