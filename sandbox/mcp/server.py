"""The orchestrator as an MCP server (official `mcp` SDK), for Claude Desktop, Claude Code,
Cursor and other MCP clients: one sandbox session per MCP session.

Admission is the core's: over streamable HTTP (the /mcp endpoint of `sandbox serve`) the
API's front door authenticates and rate-limits every request and hands the principal over in
the request state; over stdio (`sandbox mcp`) the owner is fixed by the command line and each
tool call is admitted for that local principal. Sessions open through `open_session` (the
key's profiles, the session caps) and runs wait for a run slot, as on every other surface.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import InputRequiredResult

from sandbox.core.admission import Principal
from sandbox.core.aio import run_admitted
from sandbox.core.orchestrator import Orchestrator
from sandbox.core.session import Session
from sandbox.exceptions import SandboxError, describe
from sandbox.http_api.deps import PRINCIPAL_STATE
from sandbox.mcp_approvals import Prompts
from sandbox.settings import Settings

T = TypeVar("T")
logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
Run Python in a fresh, isolated sandbox container per call (no network; /workspace persists
for this conversation; /skills holds your saved skills, read-only). Tools of configured MCP
servers are importable as Python: call search_tools to find them, then
`from servers.<server> import <tool>` inside execute_code. Personal data in tool results
appears as tokens like [EMAIL_1]; pass the tokens on to other tools unchanged.
"""


class _Sessions:
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


def tool_error(exc: SandboxError) -> ToolError:
    """Our error as an MCP tool error that starts with its stable code. An unexplained one
    (`internal`) says only that: its message may name host paths; the log has it."""
    code = describe(exc)[1]
    if code == "internal":
        logger.error("MCP tool failed: %s", exc)
        return ToolError("internal: internal error")
    return ToolError(f"{code}: {exc}")


def call(fn: Callable[[], T]) -> T:
    """Run `fn`, turning our errors into MCP tool errors that carry the stable code."""
    try:
        return fn()
    except SandboxError as exc:
        raise tool_error(exc) from None


async def _admitted(work: Awaitable[T]) -> T:
    """Await a core call, turning our errors into MCP tool errors with their stable code."""
    try:
        return await work
    except SandboxError as exc:
        raise tool_error(exc) from None


def build_mcp_server(
    get_orc: Callable[[], Orchestrator],
    *,
    local: Principal | None = None,
    idle_s: float | None = None,
) -> MCPServer:
    """An MCPServer whose tools drive sessions of the orchestrator `get_orc()` returns.

    `local` is the principal of a stdio server; over HTTP the front door supplies one.
    """
    mcp = MCPServer("sandbox", instructions=INSTRUCTIONS, log_level="WARNING")
    sessions = _Sessions(get_orc, local, idle_s)
    mcp.sandbox_sessions = sessions  # type: ignore[attr-defined]
    prompts = Prompts(lambda: get_orc().approvals)

    @mcp.tool()
    async def execute_code(
        code: str, ctx: Context, timeout: float | None = None
    ) -> dict[str, Any] | InputRequiredResult:
        """Run Python source in a fresh sandbox container. Returns stdout, stderr, exit_code,
        duration_s and the flags timed_out, oom_killed, output_truncated. Files written to
        /workspace stay for later calls in this conversation. Tool calls that need approval
        are put to the user while the code runs (when the client supports elicitation)."""
        s, surface = await anyio.to_thread.run_sync(sessions.get, ctx)

        async def work() -> dict[str, Any]:
            result = await _admitted(
                run_admitted(
                    get_orc(),
                    s.principal,
                    surface,
                    lambda slot: s.run(code, timeout=timeout, slot=slot),
                )
            )
            return result.model_dump(exclude={"exec_id"})

        key = s.principal
        return await prompts.run(ctx, s.id, key.owner, key.key_id, work)

    @mcp.tool()
    def search_tools(
        ctx: Context, query: str = "", detail: str = "summary"
    ) -> list[dict[str, Any]]:
        """Find the MCP tools usable from execute_code. detail: "name", "summary" or "schema".
        Each result says how to import the tool."""
        s, _ = sessions.get(ctx)
        return call(lambda: s.search_tools(query, detail))

    @mcp.tool()
    def read_file(path: str, ctx: Context) -> str:
        """Read a text file from /workspace (at most 64 KiB; personal data shown as tokens)."""
        s, _ = sessions.get(ctx)
        return call(lambda: s.read_text(path))

    @mcp.tool()
    def write_file(path: str, content: str, ctx: Context) -> str:
        """Write a text file into /workspace (relative path; folders are created)."""
        s, _ = sessions.get(ctx)
        data = content.encode()
        call(lambda: s.upload(path, data))
        return f"wrote {len(data)} bytes to /workspace/{path}"

    @mcp.tool()
    def list_files(ctx: Context, path: str = "") -> list[dict[str, Any]]:
        """List /workspace (or a folder in it), recursively."""
        s, _ = sessions.get(ctx)
        return [e.model_dump() for e in call(lambda: s.list_files(path))]

    @mcp.tool()
    def save_skill(path: str, content: str, ctx: Context) -> str:
        """Save a reusable file (a skill) into /skills; it stays for your later conversations."""
        s, _ = sessions.get(ctx)
        data = content.encode()
        call(lambda: s.save_skill(path, data))
        return f"saved /skills/{path}"

    @mcp.tool()
    def list_skills(ctx: Context) -> list[dict[str, Any]]:
        """List your saved skills in /skills."""
        s, _ = sessions.get(ctx)
        return [e.model_dump() for e in call(s.list_skills)]

    return mcp


def run_stdio(settings: Settings, owner: str, profiles: tuple[str, ...] | None = None) -> None:
    """Serve MCP over stdio with one orchestrator for the life of the process.

    `profiles` limits the policy profiles this owner's session may use (None: any).
    """
    import signal
    import sys

    # MCP clients end a stdio server with SIGTERM; exit through `finally` so sessions close.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    orc = Orchestrator(settings)
    server = build_mcp_server(lambda: orc, local=orc.admission.local(owner, profiles))
    try:
        server.run()
    finally:
        server.sandbox_sessions.close_all()  # type: ignore[attr-defined]
        orc.close()
