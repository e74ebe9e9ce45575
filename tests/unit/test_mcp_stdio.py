"""`sandbox mcp` side by side (sandbox/mcp/stdio.py): each process takes a slot of its own in
the data directory, skills are shared, and a server without an engine says how to fix it."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from sandbox import Orchestrator
from sandbox.exceptions import BackendUnavailableError, ServiceStartingError
from sandbox.mcp.stdio import Connector, NoFreeSlotError, open_slot
from tests.unit.conftest import local_settings


def test_each_server_takes_a_slot_of_its_own_and_owners_skills_are_shared(
    tmp_path: Path,
) -> None:
    settings = local_settings(tmp_path, controller_id="desk")
    first = open_slot(settings, slots=2)
    second = open_slot(settings, slots=2)
    try:
        assert first.settings.controller_id == "desk-mcp1"
        assert second.settings.controller_id == "desk-mcp2"
        assert first.settings.own_dir != second.settings.own_dir
        with pytest.raises(NoFreeSlotError):
            open_slot(settings, slots=2)
        with first.session("ann") as a, second.session("ann") as b:
            a.upload("mine.txt", b"a")
            assert b.list_files() == []  # workspaces are never shared
            a.save_skill("tool.py", b"x = 1")
            assert b.read_skill("tool.py") == b"x = 1"  # the owner's skills are
        assert (tmp_path / "mcp" / "1" / "audit.log").exists()  # one trail per slot
    finally:
        first.close()
    again = open_slot(settings, slots=2)  # the freed slot is taken again
    assert again.settings.controller_id == "desk-mcp1"
    again.close()
    second.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_without_an_engine_calls_say_how_to_fix_it_and_retry(tmp_path: Path) -> None:
    made: list[Orchestrator] = []
    engine_up = threading.Event()

    def make() -> Orchestrator:
        if not engine_up.is_set():
            raise BackendUnavailableError("connect: Docker engine unreachable")
        made.append(Orchestrator(local_settings(tmp_path)))
        return made[0]

    clock = FakeClock()
    connector = Connector(make, "unix:///nowhere.sock", retry_s=2.0, clock=clock)
    connector.start()
    with pytest.raises(BackendUnavailableError) as refused:
        connector.get()
    message = str(refused.value)
    assert "unix:///nowhere.sock" in message and "DOCKER_HOST" in message
    assert "sandbox doctor" in message
    engine_up.set()
    with pytest.raises(BackendUnavailableError):
        connector.get()  # within retry_s of the last try: the same answer, no new try
    clock.now = 5.0
    assert connector.get() is made[0]
    connector.close()


def test_a_slow_start_is_reported_as_starting(tmp_path: Path) -> None:
    release = threading.Event()

    def make() -> Orchestrator:
        release.wait(30)
        return Orchestrator(local_settings(tmp_path))

    connector = Connector(make, "unix:///x.sock", wait_s=0.01)
    connector.start()
    with pytest.raises(ServiceStartingError):
        connector.get()
    release.set()
    connector.close()


def test_a_stdio_server_without_an_engine_starts_and_answers_with_the_fix(
    tmp_path: Path,
) -> None:
    from mcp import Client as McpClient
    from mcp.client.stdio import StdioServerParameters

    env = {
        **os.environ,
        "DOCKER_HOST": f"unix://{tmp_path}/dead.sock",
        "SANDBOX_DATA_DIR": str(tmp_path / "data"),
        "SANDBOX_IMAGE": "sandbox-none",
    }
    env.pop("SANDBOX_DOCKER_HOST", None)
    params = StdioServerParameters(command="sandbox", args=["mcp", "--owner", "me"], env=env)

    async def main() -> tuple[set[str], Any]:
        async with McpClient(params, read_timeout_seconds=60) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            return names, await c.call_tool("execute_code", {"code": "print(1)"})

    names, answer = asyncio.run(main())
    assert "execute_code" in names
    text = " ".join(getattr(part, "text", "") for part in answer.content)
    assert answer.is_error and "backend_unavailable: " in text
    assert f"unix://{tmp_path}/dead.sock" in text and "DOCKER_HOST" in text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_a_cancelled_call_to_a_stdio_server_kills_its_run(tmp_path: Path, mode: str) -> None:
    from mcp import Client as McpClient
    from mcp.client.stdio import StdioServerParameters

    from sandbox.audit import AuditKeys, AuditLog

    data = tmp_path / "data"
    env = {
        **os.environ,
        "SANDBOX_DATA_DIR": str(data),
        "SANDBOX_BACKEND__TYPE": "local",
        "SANDBOX_BACKEND__UNSAFE_NO_ISOLATION": "true",
        "SANDBOX_WORKSPACE_BACKING": "directory",
    }
    params = StdioServerParameters(command="sandbox", args=["mcp", "--owner", "me"], env=env)
    trail = data / "mcp" / "1" / "audit.log"

    def events(name: str) -> list[dict[str, Any]]:
        log = AuditLog(trail, AuditKeys.load_or_create(data / "audit-keys.json"))
        try:
            return [r for r in log.read() if r["event"] == name]
        finally:
            log.close()

    async def main() -> str:
        async with McpClient(params, read_timeout_seconds=60, mode=mode) as c:
            code = "import time\nprint('started', flush=True)\ntime.sleep(60)"
            task = asyncio.ensure_future(c.call_tool("execute_code", {"code": code}))
            for _ in range(1000):  # bounded: until the run has begun
                if trail.exists() and events("run_start"):
                    break
                await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            after = await c.call_tool("execute_code", {"code": "print(9)"})
            return " ".join(getattr(part, "text", "") for part in after.content)

    assert "9" in asyncio.run(main())
    assert [r["outcome"] for r in events("run_end")] == ["cancelled", "ok"]
