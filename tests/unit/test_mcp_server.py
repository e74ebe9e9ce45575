"""The MCP server's tools through the SDK's in-memory client, on the local-process backend:
a stdio-like principal, admission through the core, errors with their stable codes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from mcp import Client as McpClient

from sandbox import Orchestrator
from sandbox.mcp import build_mcp_server
from tests.unit.conftest import MakeOrc

TOOLS = {
    "execute_code",
    "search_tools",
    "read_file",
    "write_file",
    "list_files",
    "save_skill",
    "list_skills",
}


def with_client(orc: Orchestrator, work: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    server = build_mcp_server(lambda: orc, local=orc.admission.local("desk"))

    async def main() -> Any:
        try:
            async with McpClient(server) as c:
                return await work(c)
        finally:
            server.sandbox_sessions.close_all()  # type: ignore[attr-defined]

    return asyncio.run(main())


def text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_the_tools_run_code_and_share_one_workspace(local_orc: Orchestrator) -> None:
    async def work(c: Any) -> list[Any]:
        names = {t.name for t in (await c.list_tools()).tools}
        assert names >= TOOLS
        await c.call_tool("write_file", {"path": "in.txt", "content": "hello"})
        ran = await c.call_tool("execute_code", {"code": "print(open('in.txt').read().upper())"})
        read = await c.call_tool("read_file", {"path": "in.txt"})
        listed = await c.call_tool("list_files", {})
        await c.call_tool("save_skill", {"path": "s.py", "content": "x = 1"})
        skills = await c.call_tool("list_skills", {})
        return [ran, read, listed, skills]

    ran, read, listed, skills = with_client(local_orc, work)
    assert text(ran).endswith("--- stdout ---\nHELLO")
    assert text(read) == "hello"
    assert text(listed).startswith("in.txt  5 B\n")
    assert text(skills).startswith("s.py  5 B\n")
    opened = [r for r in local_orc.audit.read() if r["event"] == "session_open"]
    assert [(r["owner"], r["surface"]) for r in opened] == [("desk", "mcp-stdio")]


def test_refusals_come_back_as_tool_errors_with_their_code(local_orc: Orchestrator) -> None:
    async def work(c: Any) -> list[Any]:
        return [
            await c.call_tool("read_file", {"path": "../etc/passwd"}),
            await c.call_tool("read_file", {"path": "missing.txt"}),
            await c.call_tool("execute_code", {"code": "print(1)", "timeout": 10_000}),
        ]

    unsafe, missing, bad = with_client(local_orc, work)
    assert unsafe.is_error and "unsafe_path: " in text(unsafe)
    assert missing.is_error and "not_found: " in text(missing)
    assert bad.is_error and "invalid_input: " in text(bad)


def test_the_local_principal_has_a_rate_too(make_orc: MakeOrc) -> None:
    orc = make_orc(api={"rate_per_s": 0.01, "rate_burst": 2})

    async def work(c: Any) -> list[Any]:
        return [await c.call_tool("list_skills", {}) for _ in range(3)]

    results = with_client(orc, work)
    assert [r.is_error for r in results] == [False, False, True]
    assert "rate_limited: " in text(results[2])


def test_a_server_without_a_principal_refuses_every_call(local_orc: Orchestrator) -> None:
    server = build_mcp_server(lambda: local_orc)

    async def main() -> Any:
        async with McpClient(server) as c:
            return await c.call_tool("execute_code", {"code": "print(1)"})

    out = asyncio.run(main())
    assert out.is_error and "unauthorized" in text(out)
    assert local_orc.sessions() == []
