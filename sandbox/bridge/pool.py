"""Which upstream connection serves a call: one per (server, owner), unless the server is shared.

    call(server, tool, args, owner=...) → the entry `owner` reaches by that name (the
    deployment's, or the owner's own) → its connection: (server, None) when shared, else
    (server, owner), started on that owner's first call → the call

Connections run in one event-loop thread (the controller's shared loop); sync callers submit
coroutines with `submit()`. A per-owner connection (for stdio, a process) is stopped after
`upstream_idle_s` without a call, and at most `max_upstreams_per_server` of one server and
`max_upstreams` in all run at once (shared ones aside, stopping ones included): a call that
would start one more, once the idle ones are stopped, gets UpstreamCapacityError.

Every declared server is listed once at start, with the credentials of whoever declared it
(the deployment, or the owner); the listing's connection is then stopped unless the server
is shared. `${owner}` is filled with the connection's owner, and `${secret:NAME}` resolves
for its identity: a deployment server's per-owner connection takes the owner's secret of
that name, else the deployment's; an owner's own server only the owner's; a shared one only
the deployment's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from sandbox.bridge.config import McpConfig, ServerSpec, fill_owner
from sandbox.bridge.upstream import Connection, ToolInfo, UpstreamCallError, UpstreamCapacityError
from sandbox.core.loop import BackgroundLoop
from sandbox.models import ToolLimits
from sandbox.runtime import protocol

logger = logging.getLogger(__name__)
T = TypeVar("T")
_LISTINGS_AT_ONCE = 8
Key = tuple[str, str | None]
"""(server, owner); owner None is the deployment's own identity (shared servers, listings)."""


class Resolver(Protocol):
    """Fills `${secret:NAME}` references for an owner (None: the deployment); `deployment`
    says whether the deployment's secrets may stand in for an owner's missing one."""

    def __call__(self, text: str, owner: str | None = None, *, deployment: bool = True) -> str: ...


def _no_secrets(text: str, owner: str | None = None, *, deployment: bool = True) -> str:
    return text


class UpstreamPool:
    """Owns the connections to every declared server, per owner, and their bounds."""

    def __init__(
        self,
        config: McpConfig,
        limits: ToolLimits | None = None,
        connect_timeout_s: float = 30.0,
        resolve: Resolver | None = None,
        loop: BackgroundLoop | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._limits = limits or ToolLimits()
        self._resolve = resolve or _no_secrets
        self._clock = clock
        # The controller's shared loop; a pool made on its own (tests, tools) owns one.
        self._owns_loop = loop is None
        self._bg = loop if loop is not None else BackgroundLoop("sbx-mcp")
        self._loop = self._bg.loop
        self._conns: dict[Key, Connection] = {}
        self._listed: dict[Key, dict[str, ToolInfo]] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self._warned = 0.0
        self.submit(self._boot(connect_timeout_s)).result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    async def _boot(self, timeout_s: float) -> None:
        declared: list[tuple[Key, ServerSpec, bool]] = [
            ((name, None), spec, False) for name, spec in self._config.servers.items()
        ]
        for owner, own in self._config.owners.items():
            declared += [((name, owner), spec, True) for name, spec in own.servers.items()]
        # A few listings at once: a config with many owners must not start all their
        # servers together.
        at_once = asyncio.Semaphore(_LISTINGS_AT_ONCE)

        async def listing(key: Key, spec: ServerSpec, own: bool) -> None:
            async with at_once:
                conn = self._start(key, spec, own)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(conn.ready.wait(), timeout_s)
                if not conn.ready.is_set():
                    # Left trying: a shared one serves once up, a per-owner one is reaped.
                    logger.warning("MCP server %r not ready: %s", key[0], conn.error or "timeout")
                    return
                self._listed[key] = dict(conn.tools)
                if not spec.shared:
                    await self._stop(key)  # it listed the tools; owners get their own on demand

        await asyncio.gather(*(listing(*d) for d in declared))
        self._reaper = asyncio.create_task(self._reap_loop())

    def tools(self, owner: str | None = None) -> list[ToolInfo]:
        """The deployment's tools, and `owner`'s own servers' when an owner is given."""
        return [
            t
            for (_, declared_by), tools in self._listed.items()
            if declared_by is None or declared_by == owner
            for t in tools.values()
        ]

    def owners(self) -> list[str]:
        """Owners with servers of their own."""
        return sorted(self._config.owners)

    def connections(self) -> list[Key]:
        """The (server, owner) connections running now, shared ones included."""
        return list(self._conns)

    def status(self) -> dict[str, str]:
        """Each deployment server: 'ready' when it is listed (and, if shared, connected)."""
        out = {}
        for name, spec in self._config.servers.items():
            conn = self._conns.get((name, None))
            up = conn.ready.is_set() if spec.shared and conn else (name, None) in self._listed
            error = conn.error if conn is not None else None
            out[name] = "ready" if up else f"down: {error or 'connecting'}"
        return out

    async def call(
        self,
        server: str,
        tool: str,
        args: dict[str, Any],
        timeout_s: float,
        *,
        owner: str | None = None,
    ) -> Any:
        """Call a tool as `owner` (None: the deployment); returns the JSON-able result.

        Raises:
            UpstreamCapacityError: a new connection would pass a cap.
            UpstreamCallError: unknown server or tool, server down, timeout, or the tool failed.
        """
        found = self._config.spec(server, owner)
        if found is None:
            raise UpstreamCallError(protocol.NOT_FOUND, f"no MCP server named {server!r}")
        spec, own = found
        key = (server, None if spec.shared else owner)
        conn = self._conns.get(key) or await self._open(key, spec, own)
        conn.in_flight += 1
        conn.last_used = self._clock()
        try:
            return await conn.call(tool, args, timeout_s)
        finally:
            conn.in_flight -= 1
            conn.last_used = self._clock()

    async def _open(self, key: Key, spec: ServerSpec, own: bool) -> Connection:
        if self._closed:
            raise UpstreamCallError(protocol.UNAVAILABLE, "the controller is shutting down")
        if self._full(key[0]) is not None:
            await self.reap_idle()
        conn = self._conns.get(key)  # another call may have opened it meanwhile
        if conn is not None:
            return conn
        full = self._full(key[0])
        if full is not None:
            if self._clock() - self._warned > 60:
                self._warned = self._clock()
                logger.warning("per-owner MCP connection refused: %s", full)
            raise UpstreamCapacityError(full)
        return self._start(key, spec, own)

    def _full(self, server: str) -> str | None:
        """Why one more per-owner connection of `server` may not start, if it may not."""
        lim = self._limits
        per_owner = [k for k, c in self._conns.items() if not c.spec.shared]
        if sum(1 for k in per_owner if k[0] == server) >= lim.max_upstreams_per_server:
            return (
                f"MCP server {server!r} already runs for {lim.max_upstreams_per_server} owners "
                "(the limit); try again later"
            )
        if len(per_owner) + len(self._stopping) >= lim.max_upstreams:
            return (
                f"the controller already runs {lim.max_upstreams} per-owner MCP server "
                "connections (the limit); try again later"
            )
        return None

    def _start(self, key: Key, spec: ServerSpec, own: bool) -> Connection:
        server, owner = key

        def resolve(text: str) -> str:
            return self._resolve(fill_owner(text, owner), owner, deployment=not own)

        conn = Connection(server, spec, resolve, owner)
        conn.last_used = self._clock()
        self._conns[key] = conn
        conn.start()
        return conn

    async def _stop(self, key: Key) -> None:
        conn = self._conns.pop(key, None)
        if conn is None:
            return
        task = asyncio.create_task(conn.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
        # A caller cancelled mid-wait (its run ended) must not cut the process's stop short.
        await asyncio.shield(task)

    async def reap_idle(self, now: float | None = None) -> list[Key]:
        """Stop the per-owner connections idle for `upstream_idle_s`; returns their keys."""
        now = self._clock() if now is None else now
        idle = [
            k
            for k, c in self._conns.items()
            if not c.spec.shared
            and c.in_flight == 0
            and now - c.last_used >= self._limits.upstream_idle_s
        ]
        await asyncio.gather(*(self._stop(k) for k in idle))
        return idle

    async def _reap_loop(self) -> None:
        period = min(max(self._limits.upstream_idle_s / 4, 0.5), 30.0)
        while True:
            await asyncio.sleep(period)
            try:
                await self.reap_idle()
            except Exception:  # the reaper outlives one bad stop
                logger.exception("stopping idle MCP server connections failed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        async def stop() -> None:
            if self._reaper is not None:
                self._reaper.cancel()
            await asyncio.gather(*(self._stop(k) for k in list(self._conns)))

        with contextlib.suppress(Exception):
            self.submit(stop()).result(timeout=10)
        if self._owns_loop:
            self._bg.close()
