"""What MCP hands a model: characters returned for a 3 MB flood (before and after the output
budget), and what an MCP `execute_code` adds to the embedded `Session.run` of print(1).

    python bench/bench_mcp.py [--n 30] [--no-stdio]

"Before" is the tool as it was: the RunResult's fields as the tool's return value, which the
SDK sends as JSON text in `content` and again as `structuredContent`; it is rebuilt here on a
bare MCPServer around the same run. Latency variants go round-robin in one loop, each call
after a 0.3 s pause (an agent's think time, in which the next container warms), so machine
noise hits them alike. Needs a running engine and the sandbox image (scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mcp import Client as McpClient
from mcp.client.stdio import StdioServerParameters
from mcp.server.mcpserver import MCPServer

from sandbox import Orchestrator, Settings
from sandbox.backends.docker import DockerBackend
from sandbox.images import ensure_image
from sandbox.mcp import build_mcp_server
from sandbox.models import RunResult

FLOOD = "print('z' * 3_000_000)"
THINK_S = 0.3


def returned(result: Any) -> tuple[int, int]:
    """Characters of a tool result a client may hand to the model: its text content, and its
    structuredContent as JSON."""
    text = sum(len(getattr(c, "text", "")) for c in result.content)
    structured = result.structured_content
    return text, len(json.dumps(structured)) if structured is not None else 0


def old_server(result: RunResult) -> MCPServer:
    """The execute_code of before this issue, answering with `result`."""
    mcp = MCPServer("before")

    @mcp.tool()
    def execute_code(code: str) -> dict[str, Any]:
        return result.model_dump(exclude={"exec_id", "outputs", "omitted"})

    return mcp


async def flood(orc: Orchestrator) -> list[tuple[str, int, int]]:
    rows = []
    with orc.session("bench") as s:
        result = s.run(FLOOD)
    async with McpClient(old_server(result)) as c:
        rows.append(("before", *returned(await c.call_tool("execute_code", {"code": FLOOD}))))
    server = build_mcp_server(lambda: orc, local=orc.admission.local("bench"))
    try:
        async with McpClient(server, mode="legacy") as c:
            rows.append(("after", *returned(await c.call_tool("execute_code", {"code": FLOOD}))))
    finally:
        server.sandbox_sessions.close_all()  # type: ignore[attr-defined]
    return rows


async def latency(
    orc: Orchestrator, n: int, stdio: bool, settings: Settings
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {}
    embedded = orc.session("bench")
    server = build_mcp_server(lambda: orc, local=orc.admission.local("bench"))
    clients = {
        "MCP in process, 2025-11-25 (JSON-RPC messages)": McpClient(server, mode="legacy"),
        "MCP in process, 2026-07-28": McpClient(server, mode="auto"),
    }
    if stdio:
        env = {**os.environ, "SANDBOX_DATA_DIR": str(settings.data_dir / "stdio"),
               "SANDBOX_CONTROLLER_ID": "benchstdio", "SANDBOX_IMAGE": settings.image or ""}  # fmt: skip
        params = StdioServerParameters(
            command=sys.executable,
            args=["-c", "from sandbox.cli import main; main()", "mcp", "--owner", "bench"],
            env=env,
        )
        clients["MCP over stdio (sandbox mcp)"] = McpClient(params, mode="legacy")
    async with contextlib.AsyncExitStack() as stack:
        for c in clients.values():
            await stack.enter_async_context(c)
        calls: dict[str, Callable[[], Awaitable[None]]] = {
            "embedded Session.run": lambda: _embedded(embedded),
            **{name: _over(c) for name, c in clients.items()},
        }
        for once in calls.values():  # first calls open sessions and warm up
            await once()
        for _ in range(n):
            for name, once in calls.items():
                await asyncio.sleep(THINK_S)
                start = time.perf_counter()
                await once()
                times.setdefault(name, []).append((time.perf_counter() - start) * 1000)
    server.sandbox_sessions.close_all()  # type: ignore[attr-defined]
    embedded.close()
    return times


async def _embedded(session: Any) -> None:
    r = await asyncio.to_thread(session.run, "print(1)")
    if r.stdout != "1\n":
        raise RuntimeError(f"embedded run printed {r!r}")


def _over(client: McpClient) -> Callable[[], Awaitable[None]]:
    async def once() -> None:
        r = await client.call_tool("execute_code", {"code": "print(1)"})
        if r.is_error or not r.content[0].text.endswith("--- stdout ---\n1"):
            raise RuntimeError(f"MCP run answered {r.content!r}")

    return once


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] if len(xs) > 1 else xs[0]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--no-stdio", action="store_true")
    args = ap.parse_args()
    backend = DockerBackend()
    image = ensure_image(
        backend,
        "python:3.11-slim" if backend.image_exists("python:3.11-slim") else "sbx-base:bookworm",
    )
    data = Path(tempfile.mkdtemp(prefix="sbx-bench-mcp-"))
    settings = Settings(data_dir=data / "orc", image=image, controller_id="benchmcp")
    with Orchestrator(settings) as orc:
        print("### characters returned to the model for print('z' * 3_000_000)\n")
        print("| tool | content text | structuredContent (JSON) | total |\n|---|---:|---:|---:|")
        for name, text, structured in asyncio.run(flood(orc)):
            print(f"| {name} | {text:,} | {structured:,} | {text + structured:,} |")
        times = asyncio.run(latency(orc, args.n, not args.no_stdio, settings))
    print(f"\n### print(1), warm, n={args.n} each, round-robin\n")
    print("| variant | p50 ms | p95 ms | p50 over embedded |\n|---|---:|---:|---:|")
    base = statistics.median(times["embedded Session.run"])
    for name, xs in times.items():
        p50 = statistics.median(xs)
        print(f"| {name} | {p50:.1f} | {pct(xs, 95):.1f} | {p50 - base:+.1f} |")


if __name__ == "__main__":
    main()
