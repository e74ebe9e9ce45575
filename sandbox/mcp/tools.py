"""The tools a model calls: each drives the session of the MCP client that called it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import InputRequiredResult

from sandbox.core.aio import run_admitted
from sandbox.core.orchestrator import Orchestrator
from sandbox.mcp.approvals import Prompts
from sandbox.mcp.errors import admitted, call
from sandbox.mcp.sessions import Sessions


def register(
    mcp: MCPServer, sessions: Sessions, get_orc: Callable[[], Orchestrator], prompts: Prompts
) -> None:
    """Add the sandbox's tools to `mcp`."""

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
            result = await admitted(
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
