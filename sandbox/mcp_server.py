"""The orchestrator as an MCP server (official `mcp` SDK), for Claude Desktop, Claude Code,
Cursor and other MCP clients: one sandbox session per MCP session.

Over stdio (`sandbox mcp`) the owner is fixed by the command line. Over streamable HTTP (the
/mcp endpoint of `sandbox serve`) every request carries an API key, which names the owner; a
session opened under one key is never served to another.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from sandbox.exceptions import SandboxError
from sandbox.keys import KeyStore
from sandbox.orchestrator import Orchestrator, Session

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
    client is the API key's owner plus the `Mcp-Session-Id` header when the client sends one
    (protocol versions without sessions share one sandbox session per owner). Idle HTTP
    sessions are closed by the orchestrator's expiry like any other.
    """

    def __init__(
        self,
        get_orc: Callable[[], Orchestrator],
        keys: KeyStore | None,
        owner: str | None,
        idle_s: float | None,
    ):
        self._get_orc, self._keys, self._owner, self._idle_s = get_orc, keys, owner, idle_s
        self._lock = threading.Lock()
        self._by_client: dict[tuple[str, str], Session] = {}

    def _client(self, ctx: Context) -> tuple[str, str]:
        headers = ctx.headers
        if headers is None:  # stdio: the owner was fixed when the server started
            if self._owner is None:
                raise ToolError("no owner configured for this MCP server")
            return self._owner, "stdio"
        lowered = {k.lower(): v for k, v in headers.items()}
        scheme, _, value = lowered.get("authorization", "").partition(" ")
        key = (
            self._keys.verify(value.strip()) if self._keys and scheme.lower() == "bearer" else None
        )
        if key is None:
            raise ToolError("unauthorized: a valid API key is required")
        return key.owner, lowered.get("mcp-session-id", "default")[:128]

    def get(self, ctx: Context) -> Session:
        owner, client = self._client(ctx)
        with self._lock:
            session = self._by_client.get((owner, client))
            if session is None or session.closed:
                session = self._get_orc().session(owner=owner, idle_s=self._idle_s)
                self._by_client[(owner, client)] = session
            return session

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._by_client.values())
            self._by_client.clear()
        for session in sessions:
            session.close()


def build_mcp_server(
    get_orc: Callable[[], Orchestrator],
    *,
    keystore: KeyStore | None = None,
    owner: str | None = None,
    idle_s: float | None = None,
) -> MCPServer:
    """An MCPServer whose tools drive sessions of the orchestrator `get_orc()` returns."""
    mcp = MCPServer("sandbox", instructions=INSTRUCTIONS, log_level="WARNING")
    sessions = _Sessions(get_orc, keystore, owner, idle_s)
    mcp.sandbox_sessions = sessions  # type: ignore[attr-defined]

    def call(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except SandboxError as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from None

    @mcp.tool()
    def execute_code(code: str, ctx: Context, timeout: float | None = None) -> dict[str, Any]:
        """Run Python source in a fresh sandbox container. Returns stdout, stderr, exit_code,
        duration_s and the flags timed_out, oom_killed, output_truncated. Files written to
        /workspace stay for later calls in this conversation."""
        s = sessions.get(ctx)
        result = call(lambda: s.run(code, timeout=timeout))
        return result.model_dump(exclude={"exec_id"})  # type: ignore[no-any-return]

    @mcp.tool()
    def search_tools(
        ctx: Context, query: str = "", detail: str = "summary"
    ) -> list[dict[str, Any]]:
        """Find the MCP tools usable from execute_code. detail: "name", "summary" or "schema".
        Each result says how to import the tool."""
        s = sessions.get(ctx)
        return call(lambda: s.search_tools(query, detail))  # type: ignore[no-any-return]

    @mcp.tool()
    def read_file(path: str, ctx: Context) -> str:
        """Read a text file from /workspace (at most 64 KiB; personal data shown as tokens)."""
        s = sessions.get(ctx)
        return call(lambda: s.read_text(path))  # type: ignore[no-any-return]

    @mcp.tool()
    def write_file(path: str, content: str, ctx: Context) -> str:
        """Write a text file into /workspace (relative path; folders are created)."""
        s = sessions.get(ctx)
        data = content.encode()
        call(lambda: s.upload(path, data))
        return f"wrote {len(data)} bytes to /workspace/{path}"

    @mcp.tool()
    def list_files(ctx: Context, path: str = "") -> list[dict[str, Any]]:
        """List /workspace (or a folder in it), recursively."""
        s = sessions.get(ctx)
        return [e.model_dump() for e in call(lambda: s.list_files(path))]

    @mcp.tool()
    def save_skill(path: str, content: str, ctx: Context) -> str:
        """Save a reusable file (a skill) into /skills; it stays for your later conversations."""
        s = sessions.get(ctx)
        data = content.encode()
        call(lambda: s.save_skill(path, data))
        return f"saved /skills/{path}"

    @mcp.tool()
    def list_skills(ctx: Context) -> list[dict[str, Any]]:
        """List your saved skills in /skills."""
        s = sessions.get(ctx)
        return [e.model_dump() for e in call(s.list_skills)]

    return mcp


def run_stdio(settings: Any, owner: str) -> None:
    """Serve MCP over stdio with one orchestrator for the life of the process."""
    import signal
    import sys

    # MCP clients end a stdio server with SIGTERM; exit through `finally` so sessions close.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    orc = Orchestrator(settings)
    server = build_mcp_server(lambda: orc, owner=owner)
    try:
        server.run()
    finally:
        server.sandbox_sessions.close_all()  # type: ignore[attr-defined]
        orc.close()
