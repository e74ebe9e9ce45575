"""One front door: every admission rule holds the same on REST, SSE, /mcp (the session-based
and the 2026 protocol) and stdio MCP, and refusals are audited (THREATS L1)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import Orchestrator
from sandbox.audit import AuditKeys, AuditLog
from sandbox.keys import KeyStore
from tests.integration.test_http_api import Server

MODES = ("legacy", "auto")  # the session-based protocol, and the 2026 one (the SDK's default)


@contextmanager
def controller(make_settings, **rules: object) -> Iterator[tuple[Server, KeyStore]]:  # type: ignore[no-untyped-def]
    base = {"rate_per_s": 200, "rate_burst": 300}
    settings = make_settings(
        controller_id=make_settings().controller_id + "f" + os.urandom(2).hex(),
        api={**base, **rules},
        output={"mcp_structured": True},  # these tests read structuredContent
    )
    keys = KeyStore(settings.data_dir / "keys.json")
    with Orchestrator(settings) as orc, Server(orc, keys) as server:
        yield server, keys


def refusals(server: Server, event: str, **match: object) -> list[dict[str, Any]]:
    server.orc.admission.flush()
    return [
        r
        for r in server.orc.audit.read()
        if r.get("event") == event and all(r.get(k) == v for k, v in match.items())
    ]


def mcp_session(url: str, key: str | None, mode: str, work: Callable[[Any], Any]) -> Any:
    """Run `work(client)` inside one MCP client connection to `url`."""
    import httpx2
    from mcp import Client as McpClient

    from sandbox.bridge.upstream import _HttpTransport

    async def main() -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        transport = _HttpTransport(url, httpx2.AsyncClient(headers=headers, timeout=60))
        async with McpClient(transport, mode=mode) as c:  # type: ignore[arg-type]
            return await work(c)

    return asyncio.run(main())


def tool_text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def refused_with(result: Any, code: str) -> bool:
    """An MCP tool error carrying our stable error code."""
    return bool(result.is_error) and f"{code}: " in tool_text(result)


def stdio_params(server: Server, keys: KeyStore, owner: str, *extra: str) -> Any:
    from mcp.client.stdio import StdioServerParameters

    orc_settings = server.orc.settings
    env = {
        **os.environ,
        "SANDBOX_DATA_DIR": str(orc_settings.data_dir) + "-stdio",
        "SANDBOX_CONTROLLER_ID": orc_settings.controller_id + "s",
        "SANDBOX_IMAGE": orc_settings.image or "",
        "SANDBOX_OUTPUT__MCP_STRUCTURED": "true",
        **{
            f"SANDBOX_API__{k.upper()}": str(v)
            for k, v in orc_settings.api.model_dump().items()
            if k in ("rate_per_s", "rate_burst", "runs_per_key", "runs_total", "run_queue")
        },
    }
    return StdioServerParameters(command="sandbox", args=["mcp", "--owner", owner, *extra], env=env)


def stdio_session(params: Any, work: Callable[[Any], Any]) -> Any:
    from mcp import Client as McpClient

    async def main() -> Any:
        async with McpClient(params, read_timeout_seconds=120) as c:
            return await work(c)

    return asyncio.run(main())


def stdio_audit(params: Any, slot: int = 1) -> list[dict[str, Any]]:
    """The audit trail of the stdio server that ran in `slot` (sandbox/mcp/stdio.py)."""
    data = Path(params.env["SANDBOX_DATA_DIR"])
    trail = data / "mcp" / str(slot) / "audit.log"
    log = AuditLog(trail, AuditKeys.load_or_create(data / "audit-keys.json"))
    try:
        return log.read()
    finally:
        log.close()


# -- the key's profiles ---------------------------------------------------------------------


def test_a_strict_key_gets_strict_sessions_on_every_surface(make_settings) -> None:  # type: ignore[no-untyped-def]
    with controller(make_settings) as (server, keys):
        _, strict = keys.create("sam", ["strict"])
        h = {"Authorization": f"Bearer {strict}"}
        r = httpx.post(f"{server.url}/v1/sessions", json={}, headers=h)
        assert r.status_code == 201 and r.json()["profile"] == "strict"
        denied = httpx.post(f"{server.url}/v1/sessions", json={"profile": "default"}, headers=h)
        assert denied.status_code == 404 and denied.json()["error"]["code"] == "not_found"
        httpx.delete(f"{server.url}/v1/sessions/{r.json()['id']}", headers=h)

        for mode in MODES:

            async def run(c: Any) -> Any:
                return await c.call_tool("execute_code", {"code": "print(1)"})

            out = mcp_session(f"{server.url}/mcp", strict, mode, run)
            assert out.structured_content["exit_code"] == 0, tool_text(out)
        opened = refusals(server, "session_open", owner="sam")
        assert [(o["surface"], o["profile"]) for o in opened] == [
            ("rest", "strict"),
            ("mcp-http", "strict"),
            ("mcp-http", "strict"),
        ]
        assert refusals(server, "admission_refused", reason="profile_not_allowed", surface="rest")

        params = stdio_params(server, keys, "desk", "--profile", "strict")

        async def ran(c: Any) -> Any:
            return await c.call_tool("execute_code", {"code": "print(2)"})

        assert stdio_session(params, ran).structured_content["stdout"] == "2\n"
        stdio_opened = [r for r in stdio_audit(params) if r["event"] == "session_open"]
        assert [(o["surface"], o["profile"]) for o in stdio_opened] == [("mcp-stdio", "strict")]


# -- the request rate -------------------------------------------------------------------------


def test_the_key_rate_holds_on_rest_and_mcp_alike(make_settings) -> None:  # type: ignore[no-untyped-def]
    with controller(make_settings, rate_per_s=0.01, rate_burst=3) as (server, keys):
        _, key = keys.create("rita")
        h = {"Authorization": f"Bearer {key}"}
        codes = [httpx.get(f"{server.url}/v1/skills", headers=h).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        # The same key is now out of requests on /mcp too, whichever protocol.
        for mode in MODES:

            async def listed(c: Any) -> Any:
                return await c.list_tools()

            with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK maps a 429 to its own errors
                mcp_session(f"{server.url}/mcp", key, mode, listed)
        raw = httpx.post(
            f"{server.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers=h,
        )
        assert raw.status_code == 429 and raw.headers["retry-after"]
        surfaces = {r["surface"] for r in refusals(server, "rate_limited", owner="rita")}
        assert surfaces == {"rest", "mcp-http"}


def test_the_rate_holds_on_stdio_mcp(make_settings) -> None:  # type: ignore[no-untyped-def]
    with controller(make_settings, rate_per_s=0.01, rate_burst=2) as (server, keys):
        params = stdio_params(server, keys, "desk")

        async def three_calls(c: Any) -> list[Any]:
            return [await c.call_tool("list_skills", {}) for _ in range(3)]

        results = stdio_session(params, three_calls)
        assert [r.is_error for r in results] == [False, False, True]
        assert refused_with(results[2], "rate_limited")
        limited = [r for r in stdio_audit(params) if r["event"] == "rate_limited"]
        assert [r["surface"] for r in limited] == ["mcp-stdio"]


# -- run slots ------------------------------------------------------------------------------


def test_run_slots_hold_on_rest_sse_and_mcp(make_settings) -> None:  # type: ignore[no-untyped-def]
    with controller(make_settings, runs_per_key=1, run_queue=0) as (server, keys):
        _, key = keys.create("ruth")
        h = {"Authorization": f"Bearer {key}"}
        sid = httpx.post(f"{server.url}/v1/sessions", json={}, headers=h).json()["id"]
        # A run that holds the key's only slot until the test lets it go.
        started = threading.Event()
        release_path = f"{server.url}/v1/sessions/{sid}/files/go"
        slow = (
            "import os, time\nopen('started', 'w').close()\n"
            "for _ in range(600):\n    time.sleep(0.05)\n    if os.path.exists('go'): break\n"
        )
        holder: list[httpx.Response] = []

        def hold() -> None:
            holder.append(
                httpx.post(
                    f"{server.url}/v1/sessions/{sid}/runs",
                    json={"code": slow},
                    headers=h,
                    timeout=60,
                )
            )

        t = threading.Thread(target=hold)
        t.start()
        for _ in range(400):  # bounded wait for the run to be inside its container
            if httpx.get(f"{server.url}/v1/sessions/{sid}/files", headers=h).json():
                started.set()
                break
            threading.Event().wait(0.05)
        assert started.is_set()

        second = httpx.post(
            f"{server.url}/v1/sessions/{sid}/runs", json={"code": "print(1)"}, headers=h
        )
        assert second.status_code == 429 and second.json()["error"]["code"] == "queue_full"
        sse = httpx.post(
            f"{server.url}/v1/sessions/{sid}/runs/stream", json={"code": "print(1)"}, headers=h
        )
        assert sse.status_code == 429 and sse.json()["error"]["code"] == "queue_full"
        for mode in MODES:

            async def run(c: Any) -> Any:
                return await c.call_tool("execute_code", {"code": "print(1)"})

            out = mcp_session(f"{server.url}/mcp", key, mode, run)
            assert refused_with(out, "queue_full"), tool_text(out)

        httpx.put(release_path, content=b"", headers=h)
        t.join(60)
        assert holder[0].status_code == 200
        refused = refusals(server, "admission_refused", owner="ruth", reason="queue_full")
        assert {r["surface"] for r in refused} == {"rest", "sse", "mcp-http"}


# -- the session cap ------------------------------------------------------------------------


def test_the_session_cap_holds_on_rest_and_mcp(make_settings) -> None:  # type: ignore[no-untyped-def]
    with controller(make_settings, sessions_per_owner=1) as (server, keys):
        _, key = keys.create("sol")
        h = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{server.url}/v1/sessions", json={}, headers=h).status_code == 201
        again = httpx.post(f"{server.url}/v1/sessions", json={}, headers=h)
        assert again.status_code == 429 and again.json()["error"]["code"] == "too_many_sessions"
        for mode in MODES:

            async def run(c: Any) -> Any:
                return await c.call_tool("execute_code", {"code": "print(1)"})

            out = mcp_session(f"{server.url}/mcp", key, mode, run)
            assert refused_with(out, "too_many_sessions"), tool_text(out)
        refused = refusals(server, "admission_refused", owner="sol", reason="too_many_sessions")
        assert {r["surface"] for r in refused} == {"rest", "mcp-http"}
        assert len(server.orc.sessions("sol")) == 1


def test_parallel_creates_never_pass_the_session_cap(make_settings) -> None:  # type: ignore[no-untyped-def]
    with controller(make_settings, sessions_per_owner=4) as (server, keys):
        _, key = keys.create("pat")
        h = {"Authorization": f"Bearer {key}"}
        codes: list[int] = []

        def create() -> None:
            codes.append(httpx.post(f"{server.url}/v1/sessions", json={}, headers=h).status_code)

        threads = [threading.Thread(target=create) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(codes) == [201] * 4 + [429] * 6
        assert len(server.orc.sessions("pat")) == 4


# -- authentication -------------------------------------------------------------------------


def test_failed_authentication_is_audited_on_every_http_surface(make_settings) -> None:  # type: ignore[no-untyped-def]
    with controller(make_settings) as (server, _):
        bad = {"Authorization": "Bearer sbx_000000000000_" + "A" * 43}
        assert httpx.get(f"{server.url}/v1/skills", headers=bad).status_code == 401
        r = httpx.post(
            f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        )
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        for mode in MODES:

            async def listed(c: Any) -> Any:
                return await c.list_tools()

            with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK maps a 401 to its own errors
                mcp_session(f"{server.url}/mcp", None, mode, listed)
        counts: dict[str, int] = {}
        for r in refusals(server, "auth_failure"):  # aggregated records carry a count
            counts[r["surface"]] = counts.get(r["surface"], 0) + r["count"]
        assert counts["rest"] == 1 and counts["mcp-http"] >= 3
