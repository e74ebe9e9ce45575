"""The MCP server: the tools on an MCPServer, served over stdio or mounted at /mcp."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server.mcpserver import MCPServer

from sandbox.core.admission import Principal
from sandbox.core.orchestrator import Orchestrator
from sandbox.mcp import tools
from sandbox.mcp.approvals import Prompts
from sandbox.mcp.sessions import Sessions
from sandbox.settings import Settings

INSTRUCTIONS = """\
Run Python in a fresh, isolated sandbox container per call (no network; /workspace persists
for this conversation; /skills holds your saved skills, read-only). Tools of configured MCP
servers are importable as Python: call search_tools to find them, then
`from servers.<server> import <tool>` inside execute_code. Personal data in tool results
appears as tokens like [EMAIL_1]; pass the tokens on to other tools unchanged.
"""


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
    sessions = Sessions(get_orc, local, idle_s)
    mcp.sandbox_sessions = sessions  # type: ignore[attr-defined]
    tools.register(mcp, sessions, get_orc, Prompts(lambda: get_orc().approvals))
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
