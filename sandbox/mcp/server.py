"""The MCP server: the tools on an MCPServer, served over stdio or mounted at /mcp."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp_types import EmptyResult, SetLevelRequestParams

from sandbox.core.admission import Principal
from sandbox.core.orchestrator import Orchestrator
from sandbox.mcp import describe, session_tools, tools
from sandbox.mcp.approvals import Prompts
from sandbox.mcp.sessions import Sessions
from sandbox.settings import Settings


def build_mcp_server(
    get_orc: Callable[[], Orchestrator],
    *,
    settings: Settings | None = None,
    local: Principal | None = None,
    idle_s: float | None = None,
) -> MCPServer:
    """An MCPServer whose tools drive sessions of the orchestrator `get_orc()` returns.

    `local` is the principal of a stdio server; over HTTP the front door supplies one. The
    descriptions state `settings` (by default the orchestrator's).
    """
    settings = settings if settings is not None else get_orc().settings
    facts = describe.facts(settings, local.profiles if local is not None else None)
    mcp = MCPServer("sandbox", instructions=describe.instructions(facts), log_level="WARNING")
    sessions = Sessions(get_orc, local, idle_s)
    mcp.sandbox_sessions = sessions  # type: ignore[attr-defined]
    prompts = Prompts(lambda: get_orc().approvals)
    tools.register(mcp, sessions, get_orc, prompts, facts, settings.output)
    session_tools.register(mcp, sessions, settings.output)
    mcp.middleware.append(sessions.close_per_call)
    _declare_logging(mcp)
    return mcp


def _declare_logging(mcp: MCPServer) -> None:
    """Runs send their output as log messages, and a server that does must declare the
    logging capability (up to 2025-11-25), which the SDK's MCPServer declares only for a
    `logging/setLevel` handler. Every level is sent; the client shows what it wants."""

    async def set_level(ctx: ServerRequestContext, params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()

    # The low-level server is where request handlers live; MCPServer has no public door.
    mcp._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
