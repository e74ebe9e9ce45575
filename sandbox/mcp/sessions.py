"""Which sandbox session serves which MCP client, each call admitted by the core.

One sandbox session per MCP client session, on every transport and protocol version:

- stdio (`sandbox mcp`): the process serves one client, so it has one sandbox session,
  opened at its first call and closed when the process ends.
- streamable HTTP, protocol versions with sessions (up to 2025-11-25): one sandbox session
  per `Mcp-Session-Id`, bound to the key that opened it (the SDK answers another key's
  requests for it with 404, and so does this map), closed when the MCP session ends: the
  client's DELETE (`watch_ends`), the SDK's idle timeout (the sandbox session's idle time is
  the same), the server's shutdown.
- streamable HTTP, 2026-07-28 (no protocol sessions, SEP-2567): a call that names no session
  gets a fresh sandbox session for that call alone, closed when the call ends
  (`close_per_call`); `open_session` mints one that later calls name as `session`.

A call that names `session` uses that open session of the caller's owner (as the HTTP API
does), if its profile is one the caller's key may use: two clients share a workspace only when
they name the same session. Admission is the core's: over HTTP the API's front door
authenticates and rate-limits every request and hands the principal over in the request
state; over stdio the owner is fixed by the command line and each call is admitted for that
local principal. Sessions open through `open_session` (the key's profiles, the session caps).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.core.admission import Principal
from sandbox.core.orchestrator import Orchestrator
from sandbox.core.session import Session
from sandbox.http_api.deps import PRINCIPAL_STATE
from sandbox.mcp.errors import call

logger = logging.getLogger(__name__)

SessionParam = Annotated[
    str | None,
    Field(
        description="The id of a session from open_session, to work in its /workspace. "
        "Omitted: this connection's own session (kept across calls), or, for clients "
        "without MCP sessions (protocol 2026-07-28), a fresh sandbox for this call alone.",
        max_length=64,
    ),
]

_PER_CALL: contextvars.ContextVar[list[Session] | None] = contextvars.ContextVar(
    "sbx_mcp_per_call", default=None
)


class Sessions:
    """Sandbox sessions by MCP client (see the module docstring)."""

    def __init__(
        self,
        get_orc: Callable[[], Orchestrator],
        local: Principal | None,
        idle_s: float | None,
    ):
        self._get_orc, self._local, self._idle_s = get_orc, local, idle_s
        self._lock = threading.Lock()
        self._by_client: dict[tuple[str, str], Session] = {}
        self._closing: set[threading.Thread] = set()

    def orc(self) -> Orchestrator:
        """The orchestrator.

        Raises:
            ToolError: there is none yet (no engine answers), saying what to do about it.
        """
        return call(self._get_orc)

    def principal(self, ctx: Context) -> tuple[Principal, str | None, str]:
        """The caller, its MCP client (None: a call of the 2026 protocol, which has no
        sessions) and the surface, admitted for this call.

        Raises:
            ToolError: no principal (HTTP without the front door), or admission refused.
        """
        request = ctx.request_context.request
        if request is None:  # stdio: the owner was fixed when the server started
            local = self._local
            if local is None:
                raise ToolError("unauthorized: no owner configured for this MCP server")
            admission = self.orc().admission
            call(lambda: admission.admit(local, surface="mcp-stdio"))
            return local, "stdio", "mcp-stdio"
        scope_state = getattr(request, "scope", {}).get("state") or {}
        principal = scope_state.get(PRINCIPAL_STATE)
        if not isinstance(principal, Principal):
            raise ToolError("unauthorized: a valid API key is required")
        headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
        client = headers.get("mcp-session-id")
        return principal, client[:128] if client else None, "mcp-http"

    def get(self, ctx: Context, session: str | None = None) -> tuple[Session, str]:
        """The sandbox session this call works in, and the surface.

        Raises:
            ToolError: admission refused, no such session of the caller's (not_found), or no
                session could be opened (too_many_sessions, ...).
        """
        principal, client, surface = self.principal(ctx)
        orc = self.orc()
        if session is not None:
            return call(lambda: named(orc, principal, session, surface)), surface
        if client is None:  # no MCP session to keep it for: this call's alone
            opened = self.open(principal, surface, warm=False)  # nothing warms for nobody
            per_call = _PER_CALL.get()
            if per_call is None:  # not under `close_per_call` (never so in a server)
                logger.warning("a per-call session outside a call: it closes when idle")
            else:
                per_call.append(opened)
            return opened, surface
        ident = (principal.key_id, client)
        with self._lock:
            # Sessions closed by expiry or by their owner leave no entry behind (bounded map).
            for gone in [k for k, v in self._by_client.items() if v.closed]:
                del self._by_client[gone]
            found = self._by_client.get(ident)
            if found is None:
                found = self._by_client[ident] = self.open(principal, surface)
            return found, surface

    def open(
        self, principal: Principal, surface: str, profile: str | None = None, warm: bool = True
    ) -> Session:
        """A new sandbox session for this principal (the key's profiles, the session caps).

        Raises:
            ToolError: with the refusal's code (too_many_sessions, not_found, ...).
        """
        orc = self.orc()
        return call(
            lambda: orc.open_session(
                principal, surface=surface, profile=profile, idle_s=self._idle_s, warm=warm
            )
        )

    def own(self, ctx: Context) -> Session | None:
        """The caller's connection-scoped session if one is open (none on the 2026 protocol)."""
        principal, client, _ = self.principal(ctx)
        if client is None:
            return None
        with self._lock:
            found = self._by_client.get((principal.key_id, client))
        return found if found is not None and not found.closed else None

    def ended(self, key_id: str, client: str) -> None:
        """The MCP session `client` of this key has ended: close its sandbox session."""
        with self._lock:
            found = self._by_client.pop((key_id, client[:128]), None)
        if found is not None:
            self._close_soon(found)

    async def close_per_call(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """MCP server middleware: sessions opened for one call alone close when it ends."""
        opened: list[Session] = []
        token = _PER_CALL.set(opened)
        try:
            return await call_next(ctx)
        finally:
            _PER_CALL.reset(token)
            for s in opened:
                # Not awaited: a run the call parked (an approval on the 2026 protocol) ends
                # first, and removing the containers need not hold up the answer.
                self._close_soon(s)

    def watch_ends(self, app: ASGIApp) -> ASGIApp:
        """`app` (the SDK's streamable HTTP endpoint), telling this map when a client ends
        its MCP session with DELETE (the SDK has checked that the key is the one that opened
        it: another key gets 404 and nothing ends)."""

        async def watched(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = 0

            async def tracking(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            await app(scope, receive, tracking)
            if not status:
                # The client left before any answer (a 2026 call cancelled by closing its
                # stream) and the SDK sends none; the middleware above insists on one.
                await send({"type": "http.response.start", "status": 499, "headers": []})
                await send({"type": "http.response.body", "body": b""})
            principal = (scope.get("state") or {}).get(PRINCIPAL_STATE)
            client = dict(scope.get("headers") or []).get(b"mcp-session-id")
            ended = scope.get("method") == "DELETE" and 200 <= status < 300
            if ended and isinstance(principal, Principal) and client:
                self.ended(principal.key_id, client.decode("latin-1"))

        return watched

    def _close_soon(self, session: Session) -> None:
        closer = threading.Thread(target=session.close, name="sbx-mcp-close", daemon=True)
        with self._lock:
            self._closing = {t for t in self._closing if t.is_alive()}
            self._closing.add(closer)
        closer.start()

    def close_all(self, timeout: float = 60.0) -> None:
        """Close every session of this map, and wait (bounded) for those closing already."""
        with self._lock:
            sessions = list(self._by_client.values())
            self._by_client.clear()
            closing = list(self._closing)
        for session in sessions:
            session.close()
        for closer in closing:
            closer.join(timeout)


def named(orc: Orchestrator, principal: Principal, session_id: str, surface: str) -> Session:
    """The open session `session_id` of the principal's owner, if its profile is one the
    principal may use.

    Raises:
        NotFoundError: no such open session of this owner, or (ProfileNotAllowedError) one
            whose profile this key may not use: it looks missing either way.
    """
    found = orc.owned_session(principal.owner, session_id)
    orc.admission.profile_for(principal, found.profile.name, surface=surface)
    return found
