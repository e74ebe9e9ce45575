"""The orchestrator as an MCP server (official `mcp` SDK), for Claude Desktop, Claude Code,
Cursor and other MCP clients: one sandbox session per MCP session.

    server.py     build_mcp_server (the tools on an MCPServer), run_stdio (`sandbox mcp`)
    sessions.py   which sandbox session serves which MCP client, admitted by the core
    tools.py      the tools a model calls
    errors.py     our errors as MCP tool errors with their stable code
    approvals.py  approvals put to the client's user by elicitation while a run goes on
"""

from sandbox.mcp.server import build_mcp_server, run_stdio

__all__ = ["build_mcp_server", "run_stdio"]
