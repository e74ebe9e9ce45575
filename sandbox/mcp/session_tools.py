"""The tools that open and close sandbox sessions by name (SEP-2567 handles): what a client
without MCP sessions (protocol 2026-07-28) uses to keep /workspace between calls, and what
any client uses to share one session between conversations on purpose."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from sandbox.mcp import views
from sandbox.mcp.errors import call
from sandbox.mcp.sessions import SessionParam, Sessions, named
from sandbox.settings import OutputSettings

OPENS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
CLOSES = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


class SessionOpened(BaseModel):
    """A session opened by open_session."""

    session: str = Field(description="Pass it as `session` to the other tools.")
    profile: str
    idle_s: float | None = Field(description="It ends after this long unused.")


class SessionClosed(BaseModel):
    """What close_session ended."""

    session: str | None = Field(description="The session that ended; none if none was open.")


def register(mcp: MCPServer, sessions: Sessions, out: OutputSettings) -> None:
    """Add open_session and close_session to `mcp`."""
    structured = out.mcp_structured

    @mcp.tool(title="Open a sandbox session", annotations=OPENS, structured_output=structured)
    async def open_session(
        ctx: Context,
        profile: Annotated[
            str | None,
            Field(
                description="A policy profile your key may use; omitted: the default one.",
                max_length=64,
            ),
        ] = None,
    ) -> Annotated[CallToolResult, SessionOpened]:
        """Open a new sandbox session and return its id. Pass the id as `session` to
        execute_code and the file tools to keep working in the same /workspace across calls
        (clients without MCP sessions need this; others already keep one session per
        connection). The session ends with close_session, or once unused for its idle time."""

        def work() -> CallToolResult:
            principal, _, surface = sessions.principal(ctx)
            s = sessions.open(principal, surface, profile)
            view = SessionOpened(session=s.id, profile=s.profile.name, idle_s=s.idle_s)
            text = (
                f'opened session {s.id} (profile {s.profile.name}); pass session="{s.id}" '
                "to later calls to work in its /workspace"
            )
            return views.answer(structured, view, text, text)

        return await anyio.to_thread.run_sync(work)

    @mcp.tool(title="Close a sandbox session", annotations=CLOSES, structured_output=structured)
    async def close_session(
        ctx: Context, session: SessionParam = None
    ) -> Annotated[CallToolResult, SessionClosed]:
        """End a sandbox session: its /workspace and the files in it are deleted (your
        /skills stay). Without `session`, this connection's own session ends and the next call
        starts an empty one."""

        def work() -> CallToolResult:
            principal, _, surface = sessions.principal(ctx)
            if session is None:
                target = sessions.own(ctx)
            else:
                target = call(lambda: named(sessions.orc(), principal, session, surface))
            if target is None:
                text = "no session was open for this connection"
                return views.answer(structured, SessionClosed(session=None), text, text)
            target.close()
            text = f"closed session {target.id}"
            return views.answer(structured, SessionClosed(session=target.id), text, text)

        return await anyio.to_thread.run_sync(work)
