"""The HTTP API, the Python client and the MCP endpoints, end to end over real sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from sandbox import NotFoundError, Orchestrator, UnsafePathError
from sandbox.client import AsyncClient, Client, OutputEvent
from sandbox.exceptions import AuthenticationError, InvalidInputError, RateLimitedError
from sandbox.http_api import create_app
from sandbox.keys import KeyStore
from sandbox.models import RunResult

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, orc: Orchestrator, keys: KeyStore) -> None:
        self.orc = orc
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(orchestrator=orc, keys=keys),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_keep_alive=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        for _ in range(200):
            if self._server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(15)


@pytest.fixture(scope="module")
def api(make_settings) -> Iterator[tuple[Server, dict[str, str], KeyStore]]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        controller_id=make_settings().controller_id + "a",
        api={
            "max_body_bytes": 1024 * 1024,
            "body_timeout_s": 2,
            "rate_per_s": 200,
            "rate_burst": 300,
        },
        mcp_config=None,
    )
    keys = KeyStore(settings.data_dir / "keys.json")
    secrets = {owner: keys.create(owner)[1] for owner in ("alice", "bob", "flood")}
    config = {
        "mcpServers": {
            "crm": {"command": sys.executable, "args": [str(ROOT / "examples/mcp_servers/crm.py")]}
        }
    }
    with Orchestrator(settings, mcp_config=config) as orc, Server(orc, keys) as server:
        yield server, secrets, keys


@pytest.fixture
def alice(api) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    server, secrets, _ = api
    with Client(server.url, secrets["alice"]) as c:
        yield c


def exercise(session) -> list[object]:  # type: ignore[no-untyped-def]
    """The same calls work on an embedded Session and on a RemoteSession."""
    session.upload("data/in.csv", b"a,b\n1,2\n")
    r = session.run(
        "rows = open('data/in.csv').read().splitlines()\nopen('out.txt', 'w').write(str(len(rows)))\nprint('rows', len(rows))"
    )
    return [
        r.stdout,
        r.exit_code,
        session.download("out.txt"),
        sorted(e.path for e in session.list_files()),
    ]


def test_the_client_has_the_embedded_session_interface(api, alice: Client, make_settings) -> None:  # type: ignore[no-untyped-def]
    with alice.session() as remote:
        got_remote = exercise(remote)
    settings = make_settings(controller_id=make_settings().controller_id + "e")
    with Orchestrator(settings) as orc, orc.session(owner="alice") as local:
        got_local = exercise(local)
    assert got_remote == got_local == ["rows 2\n", 0, b"2", ["data", "data/in.csv", "out.txt"]]


def test_sessions_files_previews_skills_and_tools_round_trip(alice: Client) -> None:
    with alice.session(ttl_s=600, idle_s=300) as s:
        r = s.run("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)")
        assert (r.stdout, r.stderr, r.exit_code) == ("out\n", "err\n", 3)
        s.upload("note.txt", b"write to maria.gonzalez@example.com")
        assert s.read_text("note.txt") == "write to [EMAIL_1]"
        s.delete_file("note.txt")
        with pytest.raises(NotFoundError):
            s.download("note.txt")
        s.save_skill("tools/hello.py", b"def hello(): return 'hi'\n")
        assert any(e.path == "tools/hello.py" for e in s.list_skills())
        assert (
            s.run(
                "import sys; sys.path.insert(0, '/skills/tools'); import hello; print(hello.hello())"
            ).stdout
            == "hi\n"
        )
        assert s.search_tools("customer")[0]["name"].startswith("crm.")
        sid = s.id
    with pytest.raises(NotFoundError):
        Client(alice.base_url, alice._headers["Authorization"][7:]).request(
            "GET", f"/v1/sessions/{sid}"
        )


def test_streaming_delivers_output_before_the_result(alice: Client) -> None:
    with alice.session() as s:
        events = list(
            s.stream(
                "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.2)"
            )
        )
    output = [e for e in events if isinstance(e, OutputEvent)]
    assert [e.text for e in output] == ["tick 0\n", "tick 1\n", "tick 2\n"]
    assert isinstance(events[-1], RunResult) and events[-1].stdout == "tick 0\ntick 1\ntick 2\n"


def test_the_async_client_works_the_same(api) -> None:  # type: ignore[no-untyped-def]
    server, secrets, _ = api

    async def main() -> tuple[str, list[str]]:
        async with AsyncClient(server.url, secrets["alice"]) as c, await c.session() as s:
            await s.upload("x.txt", b"hi")
            r = await s.run("print(open('x.txt').read())")
            streamed = [e.text async for e in s.stream("print(1)") if isinstance(e, OutputEvent)]
            return r.stdout, streamed

    assert asyncio.run(main()) == ("hi\n", ["1\n"])


def test_one_key_cannot_touch_another_owners_session(api) -> None:  # type: ignore[no-untyped-def]
    server, secrets, _ = api
    with Client(server.url, secrets["alice"]) as a, Client(server.url, secrets["bob"]) as b:
        s = a.session()
        assert len(s.id) >= 32  # 128-bit random ids
        a.save_skill("private.py", b"secret = 1")
        for method, path in [
            ("GET", f"/v1/sessions/{s.id}"),
            ("POST", f"/v1/sessions/{s.id}/runs"),
            ("GET", f"/v1/sessions/{s.id}/files"),
            ("GET", f"/v1/sessions/{s.id}/files/x"),
            ("PUT", f"/v1/sessions/{s.id}/files/x"),
            ("DELETE", f"/v1/sessions/{s.id}"),
        ]:
            kwargs = {"json": {"code": "print(1)"}} if method == "POST" else {}
            with pytest.raises(NotFoundError):
                b.request(method, path, **kwargs)
        assert b.list_skills() == []
        with pytest.raises(NotFoundError):
            b.read_skill("private.py")
        assert s.run("print('still mine')").stdout == "still mine\n"
        s.close()


def test_missing_wrong_and_revoked_keys_are_refused(api) -> None:  # type: ignore[no-untyped-def]
    server, secrets, keys = api
    for key in (
        None,
        "nope",
        secrets["alice"][:-1] + ("x" if secrets["alice"][-1] != "x" else "y"),
    ):
        with Client(server.url, key) as c, pytest.raises(AuthenticationError):
            c.session()
    with pytest.raises(InvalidInputError):  # refused before any request: nothing to send
        Client(server.url, "")
    record, secret = keys.create("carol")
    with Client(server.url, secret) as c:
        c.list_skills()
        keys.revoke(record.id)
        with pytest.raises(AuthenticationError):
            c.list_skills()


def test_bad_input_gets_clear_json_errors_and_the_service_stays_up(api, alice: Client) -> None:  # type: ignore[no-untyped-def]
    server, secrets, _ = api
    auth = {"Authorization": f"Bearer {secrets['alice']}"}
    with alice.session() as s, httpx.Client(base_url=server.url, headers=auth) as raw:
        base = f"/v1/sessions/{s.id}"
        cases = [
            (
                raw.post(
                    f"{base}/runs",
                    content=b"{not json",
                    headers={"content-type": "application/json"},
                ),
                400,
                "malformed_json",
            ),
            (
                raw.post(
                    f"{base}/runs",
                    content=b"[" * 100_000,
                    headers={"content-type": "application/json"},
                ),
                400,
                "malformed_json",
            ),
            (raw.post(f"{base}/runs", json={"code": "1", "extra": 1}), 422, "invalid_request"),
            (
                raw.post(
                    f"{base}/runs",
                    content=b'{"code": "x", "timeout": ' + b"9" * 100_000 + b"}",
                    headers={"content-type": "application/json"},
                ),
                400,
                "malformed_json",
            ),
            (raw.post(f"{base}/runs", json={"code": "1", "timeout": 99999}), 400, "invalid_input"),
            (raw.get(f"{base}/files/%2e%2e/%2e%2e/etc/passwd"), 400, "unsafe_path"),
            (raw.get(f"{base}/files/a%00b"), 400, "unsafe_path"),
            (
                raw.put(f"{base}/files/big.bin", content=b"x" * (2 * 1024 * 1024)),
                413,
                "body_too_large",
            ),
            (raw.get("/v1/sessions/" + "0" * 32), 404, "not_found"),
            (raw.get("/v1/tools", params={"detail": "everything"}), 422, "invalid_request"),
        ]
        for response, status, code in cases:
            assert (response.status_code, response.json()["error"]["code"]) == (status, code), (
                response.text
            )
            assert "Traceback" not in response.text and "/var/lib" not in response.text
        chunked = raw.put(f"{base}/files/chunked.bin", content=iter([b"x" * 65536] * 40))
        assert chunked.status_code == 413
        assert not [e for e in s.list_files() if "chunked" in e.path]
        with pytest.raises(UnsafePathError):
            s.upload("../escape", b"x")
        with pytest.raises(InvalidInputError):
            s.run("print(1)", timeout=10_000)
        assert s.run("print('up')").stdout == "up\n"


def test_security_headers_health_and_metrics(api, alice: Client) -> None:  # type: ignore[no-untyped-def]
    server, _, _ = api
    with alice.session() as s:
        s.run("print(1)")
    r = httpx.get(f"{server.url}/healthz")
    assert (
        r.status_code == 200
        and r.json()["engine"] == "ok"
        and r.json()["mcp_servers"] == {"crm": "ready"}
    )
    assert (
        r.headers["x-content-type-options"] == "nosniff"
        and r.headers["cache-control"] == "no-store"
    )
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'sbx_runs_total{outcome="ok"}' in metrics and "sbx_auth_failures_total" in metrics
    assert "sbx_warm_containers_ready" in metrics and "sbx_tool_calls_total" in metrics
    assert httpx.get(f"{server.url}/openapi.json").json()["info"]["title"] == "sandbox"


def test_a_key_that_floods_gets_429_with_retry_after(api) -> None:  # type: ignore[no-untyped-def]
    server, secrets, _ = api
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {secrets['flood']}"}
    ) as raw:
        limited = []
        for _ in range(3000):  # bounded: stops at the first refusal
            r = raw.get("/v1/skills")
            if r.status_code == 429:
                limited.append(r)
                break
    assert limited and int(limited[0].headers["retry-after"]) >= 1

    def flood(c: Client) -> None:
        for _ in range(3000):
            c.list_skills()

    with Client(server.url, secrets["flood"], retries=0) as c, pytest.raises(RateLimitedError):
        flood(c)
    with Client(server.url, secrets["alice"]) as other:
        assert other.list_skills() is not None  # other keys are unaffected


def test_a_slow_body_times_out_and_slow_headers_do_not_block_others(api, alice: Client) -> None:  # type: ignore[no-untyped-def]
    server, secrets, _ = api
    slow = socket.create_connection(("127.0.0.1", server.port))
    slow.sendall(
        f"PUT /v1/skills/slow.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secrets['alice']}\r\n"
        "Content-Length: 100\r\n\r\n".encode()
    )
    trickle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(30)]
    for t in trickle:
        t.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    start = time.monotonic()
    reply = b""
    slow.settimeout(10)
    while time.monotonic() - start < 10 and b"\r\n\r\n" not in reply:
        slow.sendall(b"x")
        time.sleep(0.5)
        try:
            slow.setblocking(False)
            reply += slow.recv(4096)
        except BlockingIOError:
            pass
        finally:
            slow.setblocking(True)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:100]
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    for t in [slow, *trickle]:
        t.close()


def test_expired_sessions_are_gone(alice: Client) -> None:
    s = alice.session(ttl_s=0.5)

    def run_until_refused() -> None:
        for _ in range(60):  # the reaper passes every 5 s: poll, bounded
            s.run("print(1)")
            time.sleep(0.25)

    with pytest.raises(NotFoundError):
        run_until_refused()


def mcp_http_call(url: str, key: str | None, tool: str, args: dict[str, object]) -> object:
    import httpx2
    from mcp import Client as McpClient

    from sandbox.bridge.upstream import _HttpTransport

    async def main() -> object:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with McpClient(_HttpTransport(url, httpx2.AsyncClient(headers=headers))) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            assert {
                "execute_code",
                "search_tools",
                "read_file",
                "write_file",
                "list_files",
                "save_skill",
                "list_skills",
            } <= names
            result = await c.call_tool(tool, args)
            return result.content[0].text

    return asyncio.run(main())


def test_the_mcp_endpoint_runs_code_for_a_keyed_client(api) -> None:  # type: ignore[no-untyped-def]
    server, secrets, _ = api
    out = mcp_http_call(
        f"{server.url}/mcp", secrets["alice"], "execute_code", {"code": "print(6 * 7)"}
    )
    assert out.startswith("exit code 0 in ") and out.endswith("--- stdout ---\n42")  # type: ignore[attr-defined]
    with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK raises transport-specific errors for a 401
        mcp_http_call(f"{server.url}/mcp", None, "execute_code", {"code": "print(1)"})
    r = httpx.post(f"{server.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401


def test_the_mcp_stdio_server_serves_one_session_per_client(make_settings) -> None:  # type: ignore[no-untyped-def]
    from mcp import Client as McpClient
    from mcp.client.stdio import StdioServerParameters

    settings = make_settings(controller_id=make_settings().controller_id + "s")
    env = {
        **os.environ,
        "SANDBOX_DATA_DIR": str(settings.data_dir),
        "SANDBOX_CONTROLLER_ID": settings.controller_id,
        "SANDBOX_IMAGE": settings.image or "",
    }
    params = StdioServerParameters(command="sandbox", args=["mcp", "--owner", "desktop"], env=env)

    async def main() -> list[object]:
        async with McpClient(params, read_timeout_seconds=120) as c:
            wrote = await c.call_tool(
                "write_file", {"path": "hello.txt", "content": "hi maria.gonzalez@example.com"}
            )
            ran = await c.call_tool(
                "execute_code", {"code": "print(open('hello.txt').read().upper())"}
            )
            read = await c.call_tool("read_file", {"path": "hello.txt"})
            listed = await c.call_tool("list_files", {})
            await c.call_tool("save_skill", {"path": "s.py", "content": "x = 1"})
            skills = await c.call_tool("list_skills", {})
            return [r.content[0].text for r in (wrote, ran, read, listed, skills)]

    wrote, ran, read, listed, skills = asyncio.run(main())
    assert wrote == "wrote 29 bytes to /workspace/hello.txt"
    assert str(ran).endswith("--- stdout ---\nHI [EMAIL_1]")
    assert read == "hi [EMAIL_2]"  # exact-text tokens: the upper-cased one was EMAIL_1
    assert str(listed) == "hello.txt  29 B\n[entries 1-1 of 1]"
    assert str(skills).startswith("s.py  5 B\n")


def test_a_retried_run_with_the_same_idempotency_key_executes_once(api, alice: Client) -> None:  # type: ignore[no-untyped-def]
    server, secrets, _ = api
    with alice.session() as s:
        headers = {"Authorization": f"Bearer {secrets['alice']}", "Idempotency-Key": "retry-1"}
        code = {
            "code": "import os, time\nn = len(os.listdir('.'))\nopen(f'ran{n}', 'w').close()\ntime.sleep(1)\nprint(n)"
        }
        url = f"{server.url}/v1/sessions/{s.id}/runs"
        results: list[httpx.Response] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    httpx.post(url, json=code, headers=headers, timeout=30)
                )
            )
            for _ in range(3)
        ]
        for t in threads:
            t.start()
            time.sleep(0.2)  # the client "timed out" and retried, twice
        for t in threads:
            t.join(30)
        assert [r.status_code for r in results] == [200, 200, 200]
        assert len({r.json()["exec_id"] for r in results}) == 1
        assert [e.path for e in s.list_files()] == ["ran0"]  # one execution
        again = httpx.post(url, json=code, headers=headers, timeout=30)
        assert again.json()["exec_id"] == results[0].json()["exec_id"]
        conflict = httpx.post(url, json={"code": "print(2)"}, headers=headers, timeout=30)
        assert (
            conflict.status_code == 422
            and conflict.json()["error"]["code"] == "idempotency_conflict"
        )
