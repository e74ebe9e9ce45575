"""The orchestrator as an MCP server (official `mcp` SDK), for Claude Desktop, Claude Code,
Cursor and other MCP clients: one sandbox session per MCP client session.

    server.py         build_mcp_server (the tools on an MCPServer)
    stdio.py          run_stdio (`sandbox mcp`): a slot of its own per process, no engine needed to start
    sessions.py       which sandbox session serves which MCP client, admitted by the core
    session_tools.py  open_session, close_session: sessions by name (SEP-2567 handles)
    tools.py          the tools a model calls
    describe.py       what the tool descriptions say, from the deployment's settings
    views.py          answers sized for a model
    progress.py       output and progress notifications while a run goes
    errors.py         our errors as MCP tool errors with their stable code
    approvals.py      approvals put to the client's user by elicitation while a run goes on
"""

from sandbox.mcp.server import build_mcp_server
from sandbox.mcp.stdio import run_stdio

__all__ = ["build_mcp_server", "run_stdio"]
