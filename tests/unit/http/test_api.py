"""The HTTP API over the local-process backend, in process (httpx.ASGITransport): routes,
admission, errors and limits, fast."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx
import pytest

from sandbox import Orchestrator
from sandbox.http_api import create_app
from sandbox.keys import KeyStore
from tests.unit.conftest import MakeOrc


class Api:
    def __init__(self, orc: Orchestrator) -> None:
        self.orc = orc
        self.keys = KeyStore(orc.settings.data_dir / "keys.json")
        self.app = create_app(orchestrator=orc, keys=self.keys)
        self.secrets = {o: self.keys.create(o)[1] for o in ("alice", "bob")}

    def client(self, owner: str | None = "alice", **headers: str) -> httpx.AsyncClient:
        if owner is not None:
            headers["Authorization"] = f"Bearer {self.secrets[owner]}"
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://api", headers=headers
        )


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


@pytest.fixture
def api(make_orc: MakeOrc) -> Api:
    return Api(make_orc(api={"max_body_bytes": 64 * 1024, "rate_per_s": 500, "rate_burst": 500}))


async def new_session(c: httpx.AsyncClient, **body: object) -> str:
    r = await c.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_session_runs_code_and_keeps_its_files(api: Api) -> None:
    async def main() -> None:
        async with api.client() as c:
            sid = await new_session(c)
            r = await c.post(f"/v1/sessions/{sid}/runs", json={"code": "print(6 * 7)"})
            assert r.status_code == 200 and r.json()["stdout"] == "42\n"
            assert (
                await c.put(f"/v1/sessions/{sid}/files/d/a.txt", content=b"hi")
            ).status_code == 204
            assert (await c.get(f"/v1/sessions/{sid}/files/d/a.txt")).content == b"hi"
            listed = (await c.get(f"/v1/sessions/{sid}/files")).json()
            assert "d/a.txt" in [e["path"] for e in listed]
            r = await c.post(
                f"/v1/sessions/{sid}/runs", json={"code": "print(open('d/a.txt').read())"}
            )
            assert r.json()["stdout"] == "hi\n"
            assert (await c.delete(f"/v1/sessions/{sid}")).status_code == 204
            assert (await c.get(f"/v1/sessions/{sid}")).status_code == 404

    run(main)


def test_another_owners_session_is_a_404_like_a_missing_one(api: Api) -> None:
    async def main() -> None:
        async with api.client("alice") as alice, api.client("bob") as bob:
            sid = await new_session(alice)
            theirs = await bob.post(f"/v1/sessions/{sid}/runs", json={"code": "print(1)"})
            missing = await bob.post("/v1/sessions/" + "0" * 32 + "/runs", json={"code": "1"})
            assert theirs.status_code == missing.status_code == 404
            assert theirs.json() == missing.json()
            assert (await bob.get(f"/v1/sessions/{sid}/files/x")).status_code == 404
            assert [s["id"] for s in (await bob.get("/v1/sessions")).json()] == []
            assert [s["id"] for s in (await alice.get("/v1/sessions")).json()] == [sid]

    run(main)


def test_missing_and_bad_keys_are_401_and_audited(api: Api) -> None:
    async def main() -> None:
        async with api.client(None) as anon, api.client(None, Authorization="Bearer nope") as bad:
            for c, challenge in ((anon, "Bearer"), (bad, 'Bearer error="invalid_token"')):
                r = await c.get("/v1/skills")
                assert r.status_code == 401
                assert r.headers["www-authenticate"].startswith(challenge)
                assert r.json()["error"]["code"] == "unauthorized"
            r = await anon.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert r.status_code == 401

    run(main)
    api.orc.admission.flush()
    failures = [r for r in api.orc.audit.read() if r["event"] == "auth_failure"]
    assert sum(r["count"] for r in failures) == 3
    assert {r["surface"] for r in failures} == {"rest", "mcp-http"}


def test_the_rate_limit_answers_429_with_retry_after(make_orc: MakeOrc) -> None:
    api = Api(make_orc(api={"rate_per_s": 0.01, "rate_burst": 2}))

    async def main() -> None:
        async with api.client() as c:
            codes = [(await c.get("/v1/skills")).status_code for _ in range(3)]
            assert codes == [200, 200, 429]
            r = await c.get("/v1/skills")
            assert (
                int(r.headers["retry-after"]) >= 1 and r.json()["error"]["code"] == "rate_limited"
            )

    run(main)


def test_a_key_limited_to_strict_gets_strict_and_nothing_else(api: Api) -> None:
    _, strict = api.keys.create("sam", ["strict"])

    async def main() -> None:
        async with api.client(None, Authorization=f"Bearer {strict}") as c:
            r = await c.post("/v1/sessions", json={})
            assert r.status_code == 201 and r.json()["profile"] == "strict"
            r = await c.post("/v1/sessions", json={"profile": "data-science"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"

    run(main)


def test_bad_bodies_get_clear_errors(api: Api) -> None:
    async def main() -> None:
        async with api.client() as c:
            sid = await new_session(c)
            url = f"/v1/sessions/{sid}/runs"
            bad_json = await c.post(url, content=b"{", headers={"content-type": "application/json"})
            assert (
                bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "malformed_json"
            )
            extra = await c.post(url, json={"code": "1", "shell": True})
            assert extra.status_code == 422 and extra.json()["error"]["code"] == "invalid_request"
            deep = await c.post(
                url, content=b"[" * 50_000, headers={"content-type": "application/json"}
            )
            assert deep.status_code in (400, 413)
            big = await c.put(f"/v1/sessions/{sid}/files/big", content=b"x" * (65 * 1024))
            assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
            bad_timeout = await c.post(url, json={"code": "1", "timeout": 10_000})
            assert bad_timeout.json()["error"]["code"] == "invalid_input"

    run(main)


def test_paths_that_leave_the_workspace_are_refused(api: Api) -> None:
    async def main() -> None:
        async with api.client() as c:
            sid = await new_session(c)
            for path in ("%2E%2E/etc/passwd", "a/%2E%2E/%2E%2E/x", "x%00y"):
                r = await c.put(f"/v1/sessions/{sid}/files/{path}", content=b"x")
                assert r.status_code == 400, (path, r.text)
                assert r.json()["error"]["code"] in ("unsafe_path", "invalid_input")

    run(main)


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    event = "message"
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            yield event, json.loads(line[5:])


def test_a_streamed_run_sends_output_then_the_result(api: Api) -> None:
    async def main() -> None:
        async with api.client() as c:
            sid = await new_session(c)
            body = {"code": "print('a')\nprint('b')"}
            async with c.stream("POST", f"/v1/sessions/{sid}/runs/stream", json=body) as r:
                events = [e async for e in sse_events(r)]
            kinds = [k for k, _ in events]
            assert kinds[-1] == "result" and set(kinds[:-1]) == {"stdout"}
            assert "".join(d for k, d in events if k == "stdout") == "a\nb\n"
            for s in api.orc.sessions():
                s.settle()  # the run's slot is free once its container is gone
            assert api.orc.admission.slots.in_use() == 0

    run(main)


def test_an_idempotency_key_runs_once(api: Api) -> None:
    async def main() -> None:
        async with api.client() as c:
            sid = await new_session(c)
            url, h = f"/v1/sessions/{sid}/runs", {"Idempotency-Key": "k1"}
            code = {"code": "import os\nn = len(os.listdir('.'))\nopen(f'r{n}', 'w').close()"}
            first, second = await asyncio.gather(
                c.post(url, json=code, headers=h), c.post(url, json=code, headers=h)
            )
            assert first.json()["exec_id"] == second.json()["exec_id"]
            listing = (await c.get(f"/v1/sessions/{sid}/files")).json()
            assert [e["path"] for e in listing] == ["r0"]
            other = await c.post(url, json={"code": "print(2)"}, headers=h)
            assert (
                other.status_code == 422 and other.json()["error"]["code"] == "idempotency_conflict"
            )

    run(main)


def test_health_and_metrics_need_no_key_and_count_runs(api: Api) -> None:
    async def main() -> None:
        async with api.client() as c:
            sid = await new_session(c)
            await c.post(f"/v1/sessions/{sid}/runs", json={"code": "print(1)"})
        async with api.client(None) as anon:
            health = await anon.get("/healthz")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            metrics = (await anon.get("/metrics")).text
            assert 'sbx_runs_total{outcome="ok"} 1.0' in metrics
            assert health.headers["x-content-type-options"] == "nosniff"

    run(main)


def test_a_huge_tools_entry_is_refused_and_leaves_the_trail_readable(api: Api) -> None:
    async def main() -> None:
        async with api.client() as c:
            r = await c.post("/v1/sessions", json={"tools": ["x" * 2_000_000]}, timeout=30)
            assert r.status_code == 413 or r.json()["error"]["code"] == "invalid_request"

    run(main)
    api.orc.audit.record("probe")
    assert api.orc.audit.read()[-1]["event"] == "probe"
