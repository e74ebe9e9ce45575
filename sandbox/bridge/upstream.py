"""Connections to the upstream MCP servers, held open in one event-loop thread.

Each server has a supervisor task that connects with the official SDK client, lists the
tools and keeps the connection; a stdio server that crashes or hangs past a call's timeout is
restarted. Sync callers (the orchestrator) submit coroutines with `submit()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from sandbox.bridge.config import HttpServer, McpConfig, StdioServer
from sandbox.core.loop import BackgroundLoop
from sandbox.runtime import protocol

logger = logging.getLogger(__name__)
T = TypeVar("T")


class UpstreamCallError(Exception):
    """A call that did not produce a result; `code` is what the sandbox is told. It never
    leaves the bridge (it becomes a reply), so it is not a SandboxError. `restarted`: this call
    is what made the controller restart (or reconnect) the server."""

    def __init__(self, code: str, message: str, *, restarted: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.restarted = restarted


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


@dataclass
class _Upstream:
    name: str
    spec: StdioServer | HttpServer
    tools: dict[str, ToolInfo] = field(default_factory=dict)
    client: Client | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restart: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None
    generation: int = 0


class UpstreamPool:
    """Owns the event loop thread and one supervised connection per configured server."""

    def __init__(
        self,
        config: McpConfig,
        connect_timeout_s: float = 30.0,
        resolve: Callable[[str], str] | None = None,
        loop: BackgroundLoop | None = None,
    ) -> None:
        self._resolve = resolve or (lambda text: text)
        # The controller's shared loop; a pool made on its own (tests, tools) owns one.
        self._owns_loop = loop is None
        self._bg = loop if loop is not None else BackgroundLoop("sbx-mcp")
        self._loop = self._bg.loop
        self._stopping = False
        self._ups: dict[str, _Upstream] = {}
        self._tasks: list[asyncio.Task[None]] = []

        async def boot() -> None:
            for name, spec in config.servers.items():
                up = _Upstream(name, spec)
                self._ups[name] = up
                self._tasks.append(asyncio.create_task(self._supervise(up)))
            if self._ups:
                await asyncio.wait(
                    [asyncio.create_task(u.ready.wait()) for u in self._ups.values()],
                    timeout=connect_timeout_s,
                )

        self.submit(boot()).result()
        for up in self._ups.values():
            if not up.ready.is_set():
                logger.warning("MCP server %r not ready: %s", up.name, up.error or "timed out")

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def tools(self) -> list[ToolInfo]:
        return [t for up in self._ups.values() for t in up.tools.values()]

    def status(self) -> dict[str, str]:
        return {
            n: "ready" if u.ready.is_set() else f"down: {u.error or 'connecting'}"
            for n, u in self._ups.items()
        }

    async def _supervise(self, up: _Upstream) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                async with self._connect(up.spec) as client:
                    tools = await client.list_tools()
                    listed = list(tools.tools)
                    cursor = tools.next_cursor
                    while cursor:
                        page = await client.list_tools(cursor=cursor)
                        listed += page.tools
                        cursor = page.next_cursor
                    up.tools = {
                        t.name: ToolInfo(
                            up.name,
                            t.name,
                            t.description or "",
                            dict(t.input_schema or {}),
                            dict(t.output_schema) if t.output_schema else None,
                        )
                        for t in listed
                    }
                    up.client, up.error = client, None
                    up.generation += 1
                    up.restart.clear()
                    up.ready.set()
                    backoff = 0.2
                    await up.restart.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of an upstream means reconnect
                up.error = f"{type(exc).__name__}: {exc}"
                logger.warning("MCP server %r failed: %s", up.name, up.error)
            finally:
                up.client = None
                up.ready.clear()
            if self._stopping:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _connect(self, spec: StdioServer | HttpServer) -> Client:
        # ${secret:NAME} references are resolved here, at connect time, in the controller only.
        r = self._resolve
        if isinstance(spec, StdioServer):
            params = StdioServerParameters(
                command=spec.command,
                args=[r(a) for a in spec.args],
                env={k: r(v) for k, v in spec.env.items()} or None,
                cwd=spec.cwd,
            )
            return Client(params, read_timeout_seconds=spec.timeout_s)
        http = httpx2.AsyncClient(
            headers={k: r(v) for k, v in spec.headers.items()}, timeout=spec.timeout_s
        )
        return Client(_HttpTransport(spec.url, http), read_timeout_seconds=spec.timeout_s)

    async def call(self, server: str, tool: str, args: dict[str, Any], timeout_s: float) -> Any:
        """Call a tool; returns the JSON-able result the sandbox code receives.

        Raises:
            UpstreamCallError: unknown server or tool, server down, timeout, or the tool failed.
        """
        up = self._ups.get(server)
        if up is None:
            raise UpstreamCallError(protocol.NOT_FOUND, f"no MCP server named {server!r}")
        if not up.ready.is_set():
            # A server being (re)started gets up to 10 s to come up; the call's own timeout
            # then applies to the call.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(up.ready.wait(), timeout=max(10.0, timeout_s))
        client = up.client
        if client is None:
            raise UpstreamCallError(
                protocol.UNAVAILABLE, f"MCP server {server!r} is not available: {up.error}"
            )
        if tool not in up.tools:
            raise UpstreamCallError(protocol.NOT_FOUND, f"server {server!r} has no tool {tool!r}")
        generation = up.generation
        try:
            result = await asyncio.wait_for(
                client.call_tool(tool, args, read_timeout_seconds=timeout_s), timeout=timeout_s + 1
            )
        except TimeoutError:
            raise UpstreamCallError(
                protocol.TIMEOUT,
                f"{server}.{tool} did not answer within {timeout_s:g} s",
                restarted=self._restart_stdio(up, generation),
            ) from None
        except MCPError as exc:
            if "connection closed" in str(exc).lower():
                raise UpstreamCallError(
                    protocol.UNAVAILABLE,
                    f"MCP server {server!r} closed the connection; restarting it",
                    restarted=self._restart(up, generation),
                ) from None
            if "timed out" in str(exc).lower():
                raise UpstreamCallError(
                    protocol.TIMEOUT,
                    f"{server}.{tool} did not answer within {timeout_s:g} s",
                    restarted=self._restart_stdio(up, generation),
                ) from None
            raise UpstreamCallError(
                protocol.UPSTREAM_ERROR, f"{server}.{tool} failed: {exc}"
            ) from None
        except Exception as exc:
            raise UpstreamCallError(
                protocol.UNAVAILABLE,
                f"MCP server {server!r} connection failed; restarting it",
                restarted=self._restart(up, generation),
            ) from exc
        if result.is_error:
            raise UpstreamCallError(
                protocol.UPSTREAM_ERROR, f"{server}.{tool} failed: {_text(result.content)}"
            )
        structured = result.structured_content
        if structured is not None:
            if (
                up.tools[tool].wraps_result
                and isinstance(structured, dict)
                and set(structured) == {"result"}
            ):
                return structured["result"]
            return structured
        return _content_value(result.content)

    def _restart_stdio(self, up: _Upstream, generation: int) -> bool:
        # A hung stdio server blocks every later call too; a hung remote one is not ours to restart.
        return isinstance(up.spec, StdioServer) and self._restart(up, generation)

    @staticmethod
    def _restart(up: _Upstream, generation: int) -> bool:
        """Ask the supervisor for a new connection; True if this call is what caused it."""
        if up.generation != generation:
            return False
        up.ready.clear()
        up.restart.set()
        return True

    def close(self) -> None:
        async def stop() -> None:
            self._stopping = True
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.submit(stop()).result(timeout=10)
        if self._owns_loop:
            self._bg.close()


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
