"""Which sandbox session serves which MCP client, each call admitted by the core.

Admission is the core's: over streamable HTTP (the /mcp endpoint of `sandbox serve`) the
API's front door authenticates and rate-limits every request and hands the principal over in
the request state; over stdio (`sandbox mcp`) the owner is fixed by the command line and each
tool call is admitted for that local principal. Sessions open through `open_session` (the
key's profiles, the session caps) and runs wait for a run slot, as on every other surface.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from sandbox.core.admission import Principal
from sandbox.core.orchestrator import Orchestrator
from sandbox.core.session import Session
from sandbox.http_api.deps import PRINCIPAL_STATE
from sandbox.mcp.errors import call


class Sessions:
    """Sandbox sessions by MCP client.

    Over stdio the process serves one client, so it has one sandbox session. Over HTTP the
    client is the key plus the `Mcp-Session-Id` header when the client sends one (protocol
    versions without sessions share one sandbox session per key). Idle HTTP sessions are
    closed by the orchestrator's expiry like any other.
    """

    def __init__(
        self,
        get_orc: Callable[[], Orchestrator],
        local: Principal | None,
        idle_s: float | None,
    ):
        self._get_orc, self._local, self._idle_s = get_orc, local, idle_s
        self._lock = threading.Lock()
        self._by_client: dict[tuple[str, str], Session] = {}

    def principal(self, ctx: Context) -> tuple[Principal, str, str]:
        """The caller, its MCP client id and the surface, admitted for this call.

        Raises:
            ToolError: no principal (HTTP without the front door), or admission refused.
        """
        request = ctx.request_context.request
        if request is None:  # stdio: the owner was fixed when the server started
            local = self._local
            if local is None:
                raise ToolError("unauthorized: no owner configured for this MCP server")
            call(lambda: self._get_orc().admission.admit(local, surface="mcp-stdio"))
            return local, "stdio", "mcp-stdio"
        scope_state = getattr(request, "scope", {}).get("state") or {}
        principal = scope_state.get(PRINCIPAL_STATE)
        if not isinstance(principal, Principal):
            raise ToolError("unauthorized: a valid API key is required")
        headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
        return principal, headers.get("mcp-session-id", "default")[:128], "mcp-http"

    def get(self, ctx: Context) -> tuple[Session, str]:
        principal, client, surface = self.principal(ctx)
        ident = (principal.key_id, client)
        with self._lock:
            # Sessions closed by expiry or by their owner leave no entry behind (bounded map).
            for gone in [k for k, v in self._by_client.items() if v.closed]:
                del self._by_client[gone]
            session = self._by_client.get(ident)
            if session is None:
                orc = self._get_orc()
                session = call(
                    lambda: orc.open_session(principal, surface=surface, idle_s=self._idle_s)
                )
                self._by_client[ident] = session
            return session, surface

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._by_client.values())
            self._by_client.clear()
        for session in sessions:
            session.close()
