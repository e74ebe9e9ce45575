"""Real containers under real clients: a cancelled MCP call or a dropped SSE stream removes
the run's container at once, and `sandbox mcp` stdio servers run side by side on one data
directory (separate workspaces and trails, shared skills, nothing left behind)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import Orchestrator
from sandbox.backends.base import LABEL_CONTROLLER, LABEL_EXEC, LABEL_MANAGED
from sandbox.backends.docker import DockerBackend
from sandbox.client import Client
from sandbox.keys import KeyStore
from tests import polling
from tests.integration.test_front_door import MODES, mcp_session, stdio_audit
from tests.integration.test_http_api import Server

LONG = "import time\nprint('started', flush=True)\ntime.sleep(120)"


@pytest.fixture
def served(make_settings) -> Iterator[tuple[Server, str]]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        controller_id=make_settings().controller_id + "c" + os.urandom(2).hex(),
        api={"runs_per_key": 1, "run_queue": 4, "run_queue_wait_s": 60},
        output={"mcp_structured": True},
    )
    keys = KeyStore(settings.data_dir / "keys.json")
    with Orchestrator(settings) as orc, Server(orc, keys) as server:
        yield server, keys.create("cy")[1]


wait_until = partial(polling.wait_until, timeout=60.0)


def records(server: Server, event: str) -> list[dict[str, Any]]:
    return [r for r in server.orc.audit.read() if r["event"] == event]


def container_gone(backend: DockerBackend, controller: str, exec_id: str) -> bool:
    mine = {LABEL_MANAGED: "1", LABEL_CONTROLLER: controller, LABEL_EXEC: exec_id}
    return backend.list_managed(mine) == []


@pytest.mark.parametrize("mode", MODES)
def test_a_cancelled_mcp_call_removes_its_container_at_once(
    served: tuple[Server, str], backend: DockerBackend, mode: str
) -> None:
    server, key = served

    async def work(c: Any) -> Any:
        task = asyncio.ensure_future(c.call_tool("execute_code", {"code": LONG}))
        assert await asyncio.to_thread(wait_until, lambda: len(records(server, "run_start")) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (start,) = records(server, "run_start")
        gone = await asyncio.to_thread(
            wait_until,
            lambda: container_gone(backend, server.orc.settings.controller_id, start["exec_id"]),
        )
        assert gone  # killed and removed, not left to its 120 s
        return await c.call_tool("execute_code", {"code": "print(7)"})

    after = mcp_session(f"{server.url}/mcp", key, mode, work)
    assert after.structured_content["stdout"] == "7\n"
    assert [r["outcome"] for r in records(server, "run_end")] == ["cancelled", "ok"]


def test_a_dropped_sse_stream_removes_its_container_at_once(
    served: tuple[Server, str], backend: DockerBackend
) -> None:
    server, key = served
    with Client(server.url, key) as client, client.session() as s:
        events = s.stream(LONG)
        next(events)  # 'started' has arrived
        events.close()
        (start,) = records(server, "run_start")
        controller = server.orc.settings.controller_id
        assert wait_until(lambda: container_gone(backend, controller, start["exec_id"]))
        assert [r["outcome"] for r in records(server, "run_end")] == ["cancelled"]
        r = httpx.post(
            f"{server.url}/v1/sessions/{s.id}/runs",
            json={"code": "print(8)"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
        )
        assert r.json()["stdout"] == "8\n"


def stdio_env(make_settings, data_dir: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    settings = make_settings()
    return {
        **os.environ,
        "SANDBOX_DATA_DIR": str(data_dir),
        "SANDBOX_CONTROLLER_ID": settings.controller_id + "io",
        "SANDBOX_IMAGE": settings.image or "",
        "SANDBOX_OUTPUT__MCP_STRUCTURED": "true",
    }


def test_two_stdio_servers_run_side_by_side_on_one_data_directory(
    make_settings,  # type: ignore[no-untyped-def]
    backend: DockerBackend,
    tmp_path: Path,
) -> None:
    from mcp import Client as McpClient
    from mcp.client.stdio import StdioServerParameters

    env = stdio_env(make_settings, tmp_path / "data")
    params = StdioServerParameters(command="sandbox", args=["mcp", "--owner", "desk"], env=env)
    both_wrote = asyncio.Barrier(2)

    async def client(name: str) -> dict[str, Any]:
        async with McpClient(params, read_timeout_seconds=120) as c:
            await c.call_tool("write_file", {"path": f"{name}.txt", "content": name})
            await both_wrote.wait()  # both servers are up and holding a session now
            ran = await c.call_tool("execute_code", {"code": "import os; print(os.listdir())"})
            await c.call_tool("save_skill", {"path": f"{name}.py", "content": "x = 1"})
            return dict(ran.structured_content)

    async def main() -> list[dict[str, Any]]:
        return list(await asyncio.gather(client("one"), client("two")))

    one, two = asyncio.run(main())
    assert "['one.txt']" in one["stdout"] and "['two.txt']" in two["stdout"]
    slots = [stdio_audit(params, n) for n in (1, 2)]
    assert all([r for r in trail if r["event"] == "run_end"] for trail in slots)
    controllers = {r["controller"] for trail in slots for r in trail if "controller" in r}
    assert controllers == {
        env["SANDBOX_CONTROLLER_ID"] + "-mcp1",
        env["SANDBOX_CONTROLLER_ID"] + "-mcp2",
    }
    for c in controllers:  # each server removed its containers on the way out
        assert backend.list_managed({LABEL_MANAGED: "1", LABEL_CONTROLLER: c}) == []

    async def skills() -> Any:  # a later server (slot 1 again) sees both servers' skills
        async with McpClient(params, read_timeout_seconds=120) as c:
            return await c.call_tool("list_skills", {})

    listed = asyncio.run(skills()).structured_content
    assert sorted(e["path"] for e in listed["entries"]) == ["one.py", "two.py"]
