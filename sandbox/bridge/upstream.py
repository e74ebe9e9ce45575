"""One connection to an upstream MCP server, supervised: connect, list, call, restart.

Which connection serves which owner's call is `sandbox.bridge.pool`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from sandbox.bridge.config import HttpServer, StdioServer
from sandbox.pii.redact import redact, redact_schema
from sandbox.runtime import protocol

logger = logging.getLogger(__name__)


class UpstreamCallError(Exception):
    """A call that did not produce a result; `code` is what the sandbox is told. It never
    leaves the bridge (it becomes a reply), so it is not a SandboxError. `restarted`: this call
    is what made the controller restart (or reconnect) the server."""

    def __init__(self, code: str, message: str, *, restarted: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.restarted = restarted


class UpstreamCapacityError(UpstreamCallError):
    """No new per-owner connection may start: the server's or the controller's cap is reached
    (idle ones are stopped first). The sandbox sees it as `unavailable`, with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(protocol.UNAVAILABLE, message)


@dataclass
class ToolInfo:
    server: str
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None

    @property
    def wraps_result(self) -> bool:
        """The SDKs wrap non-object returns as {"result": value}; the schema is the only marker."""
        schema = self.output_schema or {}
        return set(schema.get("properties") or {}) == {"result"} and schema.get("required") == [
            "result"
        ]


class Connection:
    """One supervised connection to one server for one identity: an owner, or the deployment.

    A supervisor task connects with the official SDK client, lists the tools and holds the
    connection; a stdio server that crashes, or hangs past a call's timeout, is restarted.
    `resolve` fills `${secret:NAME}` references for this identity, at connect time.
    """

    def __init__(
        self,
        name: str,
        spec: StdioServer | HttpServer,
        resolve: Callable[[str], str],
        owner: str | None = None,
    ) -> None:
        self.name, self.spec, self.owner = name, spec, owner
        self._resolve = resolve
        self.tools: dict[str, ToolInfo] = {}
        self.client: Client | None = None
        self.ready = asyncio.Event()
        self.restart = asyncio.Event()
        self.error: str | None = None
        self.generation = 0
        self.in_flight = 0
        self.last_used = 0.0
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start supervising (on the pool's loop)."""
        self._task = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        """Close the connection for good; a stdio server's process is ended with it."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _supervise(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                async with self._connect() as client:
                    self.tools = await _list_tools(self.name, client)
                    self.client, self.error = client, None
                    self.generation += 1
                    self.restart.clear()
                    self.ready.set()
                    backoff = 0.2
                    await self.restart.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of an upstream means reconnect
                self.error = f"{type(exc).__name__}: {exc}"
                logger.warning("MCP server %r failed: %s", self.name, self.error)
            finally:
                self.client = None
                self.ready.clear()
            if self._stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _connect(self) -> Client:
        # ${owner} and ${secret:NAME} are filled here, at connect time, in the controller only.
        r, spec = self._resolve, self.spec
        if isinstance(spec, StdioServer):
            params = StdioServerParameters(
                command=spec.command,
                args=[r(a) for a in spec.args],
                env={k: r(v) for k, v in spec.env.items()} or None,
                cwd=r(spec.cwd) if spec.cwd is not None else None,
            )
            return Client(params, read_timeout_seconds=spec.timeout_s)
        http = httpx2.AsyncClient(
            headers={k: r(v) for k, v in spec.headers.items()}, timeout=spec.timeout_s
        )
        return Client(_HttpTransport(spec.url, http), read_timeout_seconds=spec.timeout_s)

    async def call(self, tool: str, args: dict[str, Any], timeout_s: float) -> Any:
        """Call a tool; returns the JSON-able result the sandbox code receives.

        Raises:
            UpstreamCallError: server down, no such tool, timeout, or the tool failed.
        """
        server = self.name
        if not self.ready.is_set():
            # A server being (re)started gets up to 10 s to come up; the call's own timeout
            # then applies to the call.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), timeout=max(10.0, timeout_s))
        client = self.client
        if client is None:
            raise UpstreamCallError(
                protocol.UNAVAILABLE, f"MCP server {server!r} is not available: {self.error}"
            )
        if tool not in self.tools:
            raise UpstreamCallError(protocol.NOT_FOUND, f"server {server!r} has no tool {tool!r}")
        generation = self.generation
        try:
            result = await asyncio.wait_for(
                client.call_tool(tool, args, read_timeout_seconds=timeout_s), timeout=timeout_s + 1
            )
        except TimeoutError:
            raise self._timed_out(tool, timeout_s, generation) from None
        except MCPError as exc:
            if "connection closed" in str(exc).lower():
                raise UpstreamCallError(
                    protocol.UNAVAILABLE,
                    f"MCP server {server!r} closed the connection; restarting it",
                    restarted=self._restart(generation),
                ) from None
            if "timed out" in str(exc).lower():
                raise self._timed_out(tool, timeout_s, generation) from None
            raise UpstreamCallError(
                protocol.UPSTREAM_ERROR, f"{server}.{tool} failed: {exc}"
            ) from None
        except Exception as exc:
            raise UpstreamCallError(
                protocol.UNAVAILABLE,
                f"MCP server {server!r} connection failed; restarting it",
                restarted=self._restart(generation),
            ) from exc
        if result.is_error:
            raise UpstreamCallError(
                protocol.UPSTREAM_ERROR, f"{server}.{tool} failed: {_text(result.content)}"
            )
        structured = result.structured_content
        if structured is not None:
            if (
                self.tools[tool].wraps_result
                and isinstance(structured, dict)
                and set(structured) == {"result"}
            ):
                return structured["result"]
            return structured
        return _content_value(result.content)

    def _timed_out(self, tool: str, timeout_s: float, generation: int) -> UpstreamCallError:
        # A hung stdio server blocks every later call too; a hung remote one is not ours to restart.
        return UpstreamCallError(
            protocol.TIMEOUT,
            f"{self.name}.{tool} did not answer within {timeout_s:g} s",
            restarted=isinstance(self.spec, StdioServer) and self._restart(generation),
        )

    def _restart(self, generation: int) -> bool:
        """Ask the supervisor for a new connection; True if this call is what caused it."""
        if self.generation != generation:
            return False
        self.ready.clear()
        self.restart.set()
        return True


async def _list_tools(server: str, client: Client) -> dict[str, ToolInfo]:
    tools = await client.list_tools()
    listed = list(tools.tools)
    cursor = tools.next_cursor
    while cursor:
        page = await client.list_tools(cursor=cursor)
        listed += page.tools
        cursor = page.next_cursor
    return {
        # What a server says of its tools reaches every model: no PII in it (see pii.redact).
        t.name: ToolInfo(
            server,
            t.name,
            redact(t.description or ""),
            redact_schema(dict(t.input_schema or {})),
            redact_schema(dict(t.output_schema)) if t.output_schema else None,
        )
        for t in listed
    }


class _HttpTransport:
    """A Transport for `mcp.Client` over streamable HTTP with our own httpx2 client (headers)."""

    def __init__(self, url: str, http: httpx2.AsyncClient) -> None:
        self._url = url
        self._http = http
        self._cm: Any = None

    async def __aenter__(self) -> Any:
        self._cm = streamable_http_client(self._url, http_client=self._http)
        return await self._cm.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._cm.__aexit__(*exc)
        finally:
            await self._http.aclose()


def _text(content: list[Any]) -> str:
    return " ".join(getattr(c, "text", "") for c in content).strip()[:2000] or "no message"


def _content_value(content: list[Any]) -> Any:
    if len(content) == 1 and getattr(content[0], "type", None) == "text":
        return content[0].text
    return [c.model_dump(mode="json", exclude_none=True) for c in content]
