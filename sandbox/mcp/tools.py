"""The tools a model calls: each drives the session of the MCP client that called it.

Every parameter is described, every tool has a title and annotations, and every answer is
sized for a model (sandbox/core/budget.py, sandbox/core/reading.py) and carries its text
once (views.py). What the descriptions say comes from this deployment (describe.py).

No `from __future__ import annotations` here: the SDK reads the tools' annotations, and some
of them are made in the closures below (the timeout's range).
"""

import asyncio
import base64
from collections.abc import Callable
from typing import Annotated, Literal

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ImageContent, InputRequiredResult, ToolAnnotations
from pydantic import Field

from sandbox.core.aio import run_admitted
from sandbox.core.budget import budgeted
from sandbox.core.cancel import CancelToken
from sandbox.core.orchestrator import Orchestrator
from sandbox.core.reading import model_listing, page_of, read_for_model
from sandbox.mcp import describe, views
from sandbox.mcp.approvals import Prompts
from sandbox.mcp.errors import admitted, call
from sandbox.mcp.progress import OutputRelay
from sandbox.mcp.sessions import SessionParam, Sessions
from sandbox.settings import OutputSettings

READS = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)

Path = Annotated[
    str,
    Field(description="A path relative to /workspace, e.g. 'data/report.csv'.", max_length=4096),
]
Offset = Annotated[int, Field(description="Where to start: the next_offset of a page.", ge=0)]
Limit = Annotated[int, Field(description="Entries in one page (at most 10,000).", ge=1, le=10_000)]


def register(
    mcp: MCPServer,
    sessions: Sessions,
    get_orc: Callable[[], Orchestrator],
    prompts: Prompts,
    facts: describe.Facts,
    out: OutputSettings,
) -> None:
    """Add the sandbox's tools to `mcp`."""
    _runs(mcp, sessions, get_orc, prompts, facts, out)
    _files(mcp, sessions, out)
    _skills(mcp, sessions, out)


def _runs(
    mcp: MCPServer,
    sessions: Sessions,
    get_orc: Callable[[], Orchestrator],
    prompts: Prompts,
    facts: describe.Facts,
    out: OutputSettings,
) -> None:
    structured = out.mcp_structured

    @mcp.tool(
        title="Run Python code",
        description=describe.execute_code(facts),
        annotations=ToolAnnotations(
            read_only_hint=False,
            destructive_hint=True,
            idempotent_hint=False,
            open_world_hint=facts.tools or facts.network != "no network at all",
        ),
        structured_output=structured,
    )
    async def execute_code(
        code: Annotated[
            str,
            Field(description="Python source, run as a notebook cell in /workspace."),
        ],
        ctx: Context,
        timeout: Annotated[
            float | None,
            Field(
                description=f"Seconds before the run is stopped; at most {facts.timeout_s:g}, "
                "which is also the default.",
                gt=0,
            ),
        ] = None,
        session: SessionParam = None,
    ) -> Annotated[CallToolResult, views.RunOutput] | InputRequiredResult:
        s, surface = await anyio.to_thread.run_sync(sessions.get, ctx, session)
        cancel = CancelToken()  # an MCP cancel, or the client's timeout, kills the run
        relay = OutputRelay(ctx, timeout or s.limits.timeout_s, out.budget)

        async def work() -> CallToolResult:
            notifying = asyncio.ensure_future(relay.run())
            try:
                result = await admitted(
                    run_admitted(
                        get_orc(),
                        s.principal,
                        surface,
                        lambda slot: s.run(
                            code, timeout, on_output=relay.on_output, slot=slot, cancel=cancel
                        ),
                        cancel,
                    )
                )
            finally:
                relay.stop()
                notifying.cancel()
            view = views.run_output(budgeted(result, out.budget))
            text = views.run_text(view)
            return views.answer(structured, view, text, views.run_status(view))

        key = s.principal
        return await prompts.run(ctx, s.id, key.owner, key.key_id, work)

    @mcp.tool(title="Find tools usable from code", description=describe.SEARCH_TOOLS,
              annotations=READS, structured_output=structured)  # fmt: skip
    def search_tools(
        ctx: Context,
        query: Annotated[
            str, Field(description="Words to look for in tool names and descriptions.")
        ] = "",
        detail: Annotated[
            Literal["name", "summary", "schema"],
            Field(description="name; summary (adds the first line); schema (adds the "
                  "description and the input schema)."),
        ] = "summary",
        limit: Annotated[int, Field(description="Most results.", ge=1, le=100)] = 20,
        session: SessionParam = None,
    ) -> Annotated[CallToolResult, views.ToolMatches]:  # fmt: skip
        s, _ = sessions.get(ctx, session)
        found = call(lambda: s.search_tools(query, detail, limit))
        view = views.ToolMatches.model_validate({"tools": found})
        text = "\n".join(_tool_line(t) for t in view.tools) or "(no tool matches)"
        return views.answer(structured, view, text, f"{len(view.tools)} tools")


def _files(mcp: MCPServer, sessions: Sessions, out: OutputSettings) -> None:
    structured = out.mcp_structured

    @mcp.tool(title="Read a workspace file", description=describe.READ_FILE,
              annotations=READS, structured_output=structured)  # fmt: skip
    def read_file(
        path: Path,
        ctx: Context,
        offset: Offset = 0,
        encoding: Annotated[
            Literal["text", "base64"],
            Field(description="text (the default; pictures come back as images), or base64 "
                  "for a binary file."),
        ] = "text",
        session: SessionParam = None,
    ) -> Annotated[CallToolResult, views.FilePage]:  # fmt: skip
        s, _ = sessions.get(ctx, session)
        got = call(
            lambda: read_for_model(
                s.files, s.tokenizer, path, offset=offset, budget=out.budget, encoding=encoding
            )
        )
        view = views.file_page(got)
        extra = []
        if got.kind == "image":
            data = base64.b64encode(got.data).decode("ascii")
            extra.append(ImageContent(data=data, mime_type=got.mime))
        text = views.file_text(view)
        summary = text if got.kind == "image" else f"{got.path}: {got.kind}, {got.size:,} bytes"
        return views.answer(structured, view, text, summary, extra)

    @mcp.tool(title="Write a workspace file", description=describe.WRITE_FILE,
              annotations=WRITES, structured_output=structured)  # fmt: skip
    def write_file(
        path: Path,
        content: Annotated[str, Field(description="The whole text of the file.")],
        ctx: Context,
        session: SessionParam = None,
    ) -> Annotated[CallToolResult, views.Saved]:
        s, _ = sessions.get(ctx, session)
        data = content.encode()
        call(lambda: s.upload(path, data))
        view = views.Saved(path=f"/workspace/{path.lstrip('/')}", bytes=len(data))
        text = f"wrote {view.bytes} bytes to {view.path}"
        return views.answer(structured, view, text, text)

    @mcp.tool(title="List workspace files", description=describe.LIST_FILES,
              annotations=READS, structured_output=structured)  # fmt: skip
    def list_files(
        ctx: Context,
        path: Annotated[
            str, Field(description="A folder in /workspace; empty: all of it.", max_length=4096)
        ] = "",
        offset: Offset = 0,
        limit: Limit = out.page_size,
        session: SessionParam = None,
    ) -> Annotated[CallToolResult, views.Listing]:
        s, _ = sessions.get(ctx, session)
        entries = model_listing(call(lambda: s.list_files(path)), path)
        view = views.listing(call(lambda: page_of(entries, offset, limit)))
        text = views.listing_text(view, "list_files")
        return views.answer(structured, view, text, f"{view.total} entries")


def _skills(mcp: MCPServer, sessions: Sessions, out: OutputSettings) -> None:
    structured = out.mcp_structured

    @mcp.tool(title="Save a skill", description=describe.SAVE_SKILL,
              annotations=WRITES, structured_output=structured)  # fmt: skip
    def save_skill(
        path: Annotated[
            str,
            Field(description="A path relative to /skills, e.g. 'csv_tools.py'.", max_length=4096),
        ],
        content: Annotated[str, Field(description="The whole text of the file.")],
        ctx: Context,
        session: SessionParam = None,
    ) -> Annotated[CallToolResult, views.Saved]:
        s, _ = sessions.get(ctx, session)
        data = content.encode()
        call(lambda: s.save_skill(path, data))
        view = views.Saved(path=f"/skills/{path.lstrip('/')}", bytes=len(data))
        text = f"saved {view.path}"
        return views.answer(structured, view, text, text)

    @mcp.tool(title="List saved skills", description=describe.LIST_SKILLS,
              annotations=READS, structured_output=structured)  # fmt: skip
    def list_skills(
        ctx: Context, offset: Offset = 0, limit: Limit = out.page_size, session: SessionParam = None
    ) -> Annotated[CallToolResult, views.Listing]:
        s, _ = sessions.get(ctx, session)
        view = views.listing(call(lambda: page_of(s.list_skills(), offset, limit)))
        text = views.listing_text(view, "list_skills")
        return views.answer(structured, view, text, f"{view.total} skills")


def _tool_line(t: views.ToolMatch) -> str:
    line = f"{t.name}: {t.summary}" if t.summary else t.name
    line += f"\n  {t.import_}"
    if t.description and t.description != t.summary:
        line += "\n  " + t.description.replace("\n", "\n  ")
    if t.input_schema is not None:
        import json

        line += f"\n  input schema: {json.dumps(t.input_schema, ensure_ascii=False)}"
    return line
