"""An MCP client that cancels execute_code, or times out waiting for it, kills the run (the
Python SDK client over /mcp, both protocol eras; uvicorn, local-process backend)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from sandbox.keys import KeyStore
from tests.integration.test_front_door import MODES, mcp_session
from tests.integration.test_http_api import Server
from tests.unit.conftest import MakeOrc

LONG = "import time\nprint('started', flush=True)\ntime.sleep(60)"


@pytest.fixture
def served(make_orc: MakeOrc) -> Iterator[tuple[Server, str]]:
    orc = make_orc(
        api={"runs_per_key": 1, "run_queue": 4, "run_queue_wait_s": 30},
        output={"mcp_structured": True},
    )
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    with Server(orc, keys) as server:
        yield server, keys.create("alice")[1]


def events(server: Server, event: str) -> list[dict[str, Any]]:
    return [r for r in server.orc.audit.read() if r["event"] == event]


async def until(check: Any, timeout: float = 20.0) -> bool:
    for _ in range(int(timeout / 0.02)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return bool(check())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_a_cancelled_or_timed_out_call_kills_its_run(
    served: tuple[Server, str], mode: str, how: str
) -> None:
    server, key = served

    async def work(c: Any) -> Any:
        if how == "timeout":  # the SDK cancels the request when it stops waiting
            with pytest.raises(MCPError):
                await c.call_tool("execute_code", {"code": LONG}, read_timeout_seconds=2)
        else:  # the caller cancels: notifications/cancelled, or the stream closed (2026)
            task = asyncio.ensure_future(c.call_tool("execute_code", {"code": LONG}))
            assert await until(lambda: len(events(server, "run_start")) == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await until(lambda: len(events(server, "run_end")) == 1)
        # The key's one run slot comes back once the box is gone: the next call runs.
        return await c.call_tool("execute_code", {"code": "print(5)"})

    after = mcp_session(f"{server.url}/mcp", key, mode, work)
    assert after.structured_content["stdout"] == "5\n"
    ends = events(server, "run_end")
    # On a slow machine a timed-out call may be cancelled before its code was handed over.
    assert [r["outcome"] for r in ends] in (["cancelled", "ok"], ["ok"])
    if how == "cancel":
        assert ends[0]["outcome"] == "cancelled"
