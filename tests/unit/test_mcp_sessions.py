"""One sandbox session per MCP client session over /mcp (uvicorn, local-process backend): two
clients never share a workspace unless they name the same session, on either protocol era;
ending an MCP session closes its sandbox session; an MCP session and a sandbox session belong
to the key and owner that opened them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox.keys import KeyStore
from tests.integration.test_front_door import mcp_session, refused_with, tool_text
from tests.integration.test_http_api import Server
from tests.polling import wait_until
from tests.unit.conftest import MakeOrc

LEGACY = "2025-06-18"
JSON_SSE = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def served(make_orc: MakeOrc) -> Iterator[tuple[Server, dict[str, str]]]:
    orc = make_orc(api={"rate_per_s": 500, "rate_burst": 500}, output={"mcp_structured": True})
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    with Server(orc, keys) as server:
        yield server, {n: keys.create(o)[1] for n, o in (("a", "al"), ("a2", "al"), ("b", "bo"))}


def paths(result: Any) -> list[str]:
    assert not result.is_error, tool_text(result)
    return [e["path"] for e in result.structured_content["entries"]]


def client(server: Server, key: str, mode: str, work: Callable[[Any], Any]) -> Any:
    return mcp_session(f"{server.url}/mcp", key, mode, work)


def test_two_clients_on_the_2026_protocol_get_separate_workspaces(
    served: tuple[Server, dict[str, str]],
) -> None:
    server, keys = served

    async def first(c: Any) -> str:
        opened = (await c.call_tool("open_session", {})).structured_content
        sid = str(opened["session"])
        await c.call_tool("write_file", {"path": "a.txt", "content": "A", "session": sid})
        assert paths(await c.call_tool("list_files", {"session": sid})) == ["a.txt"]
        return sid

    sid = client(server, keys["a"], "auto", first)

    async def second(c: Any) -> None:
        assert paths(await c.call_tool("list_files", {})) == []  # a sandbox of its own
        mine = (await c.call_tool("open_session", {})).structured_content["session"]
        assert mine != sid and paths(await c.call_tool("list_files", {"session": mine})) == []
        # Named explicitly, the first client's session is shared (same owner).
        assert paths(await c.call_tool("list_files", {"session": sid})) == ["a.txt"]

    client(server, keys["a2"], "auto", second)

    async def other_owner(c: Any) -> Any:
        return await c.call_tool("list_files", {"session": sid})

    theirs = client(server, keys["b"], "auto", other_owner)
    assert refused_with(theirs, "not_found")


def test_a_2026_call_that_names_no_session_has_a_sandbox_for_itself_alone(
    served: tuple[Server, dict[str, str]],
) -> None:
    server, keys = served

    async def work(c: Any) -> list[Any]:
        wrote = await c.call_tool("write_file", {"path": "x.txt", "content": "x"})
        ran = await c.call_tool("execute_code", {"code": "import os; print(os.listdir('.'))"})
        return [wrote, ran]

    wrote, ran = client(server, keys["a"], "auto", work)
    assert not wrote.is_error and ran.structured_content["stdout"] == "[]\n"
    assert wait_until(lambda: server.orc.sessions("al") == [])  # each closed after its call
    opened = [r for r in server.orc.audit.read() if r["event"] == "session_open"]
    assert len(opened) == 2 and {r["surface"] for r in opened} == {"mcp-http"}


def test_session_based_clients_get_a_workspace_each_and_closing_one_ends_it(
    served: tuple[Server, dict[str, str]],
) -> None:
    server, keys = served
    h = {"Authorization": f"Bearer {keys['a']}"}
    first_listed, second_done, both_seen = threading.Event(), threading.Event(), threading.Event()

    async def first(c: Any) -> None:
        await c.call_tool("write_file", {"path": "a.txt", "content": "A"})
        assert paths(await c.call_tool("list_files", {})) == ["a.txt"]
        first_listed.set()
        await asyncio.to_thread(second_done.wait, 60)
        listed = httpx.get(f"{server.url}/v1/sessions", headers=h).json()
        both_seen.set()
        assert [s["surface"] for s in listed] == ["mcp-http", "mcp-http"]

    async def second(c: Any) -> None:
        await asyncio.to_thread(first_listed.wait, 60)
        assert paths(await c.call_tool("list_files", {})) == []
        await c.call_tool("write_file", {"path": "b.txt", "content": "B"})
        second_done.set()
        await asyncio.to_thread(both_seen.wait, 60)

    other = threading.Thread(target=client, args=(server, keys["a"], "legacy", second))
    other.start()
    client(server, keys["a"], "legacy", first)  # leaving the client deletes its MCP session
    other.join(60)
    assert wait_until(lambda: server.orc.sessions("al") == [])
    closed = [r for r in server.orc.audit.read() if r["event"] == "session_close"]
    assert len(closed) == 2


def legacy_open(server: Server, key: str) -> tuple[dict[str, str], str]:
    """A session-based MCP session opened by hand: its headers and the sandbox session id."""
    h = {**JSON_SSE, "Authorization": f"Bearer {key}", "MCP-Protocol-Version": LEGACY}
    init = {
        "protocolVersion": LEGACY,
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    r = httpx.post(
        f"{server.url}/mcp",
        headers=h,
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
    )
    h["Mcp-Session-Id"] = r.headers["mcp-session-id"]
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert httpx.post(f"{server.url}/mcp", headers=h, json=done).status_code == 202
    assert tools_call(server, h, "write_file", {"path": "a.txt", "content": "A"})
    (s,) = server.orc.sessions()
    return h, s.id


def tools_call(server: Server, h: dict[str, str], name: str, args: dict[str, Any]) -> bool:
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call"}
    r = httpx.post(
        f"{server.url}/mcp", headers=h, json={**body, "params": {"name": name, "arguments": args}}
    )
    return r.status_code == 200 and '"isError":false' in r.text.replace(" ", "")


def test_an_mcp_session_and_its_sandbox_session_belong_to_who_opened_them(
    served: tuple[Server, dict[str, str]],
) -> None:
    server, keys = served
    h, sid = legacy_open(server, keys["a"])
    for other in ("b", "a2"):  # another owner; another key of the same owner
        theirs = {**h, "Authorization": f"Bearer {keys[other]}"}
        assert httpx.delete(f"{server.url}/mcp", headers=theirs).status_code == 404
        assert not tools_call(server, theirs, "list_files", {})
    bob = {"Authorization": f"Bearer {keys['b']}"}
    assert httpx.delete(f"{server.url}/v1/sessions/{sid}", headers=bob).status_code == 404

    async def bob_closes(c: Any) -> Any:
        return await c.call_tool("close_session", {"session": sid})

    refused = client(server, keys["b"], "auto", bob_closes)
    assert refused_with(refused, "not_found")
    assert [s.id for s in server.orc.sessions("al")] == [sid]
    assert tools_call(server, h, "list_files", {})  # still the opener's
    assert httpx.delete(f"{server.url}/mcp", headers=h).status_code == 200
    assert wait_until(lambda: server.orc.sessions("al") == [])


def test_close_session_ends_the_connections_own_session_or_a_named_one(
    served: tuple[Server, dict[str, str]],
) -> None:
    server, keys = served

    async def work(c: Any) -> None:
        await c.call_tool("write_file", {"path": "a.txt", "content": "A"})
        assert "closed session" in tool_text(await c.call_tool("close_session", {}))
        assert paths(await c.call_tool("list_files", {})) == []  # a new, empty one
        named = (await c.call_tool("open_session", {})).structured_content["session"]
        closed = await c.call_tool("close_session", {"session": named})
        assert tool_text(closed) == f"closed session {named}"
        gone = await c.call_tool("list_files", {"session": named})
        assert refused_with(gone, "not_found")

    client(server, keys["a"], "legacy", work)


def test_a_session_for_one_call_starts_no_container_before_its_run(make_orc: MakeOrc) -> None:
    orc = make_orc()
    s = orc.open_session(orc.admission.local("al"), surface="mcp-http", warm=False)
    assert not s.ready(0.05)  # nothing is warming for it
    assert s.run("print(1)").stdout == "1\n"  # its one run starts a container then
    assert not s.ready(0.05)  # and none is started for a next run
    s.close()
