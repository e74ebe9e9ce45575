"""GET /v1/sessions lists the calling key's own open sessions (JSON, with or without the
trailing slash), and the clients read it."""

from __future__ import annotations

import asyncio

import httpx

from sandbox.client import AsyncClient, Client
from sandbox.http_api import create_app
from sandbox.keys import KeyStore
from tests.unit.conftest import MakeOrc


def test_a_key_lists_its_own_sessions_and_no_one_elses(make_orc: MakeOrc) -> None:
    orc = make_orc()
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    mine, other_key, bobs = (keys.create(o)[1] for o in ("alice", "alice", "bob"))
    transport = httpx.ASGITransport(app=create_app(orchestrator=orc, keys=keys))

    def client(key: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers)

    async def main() -> None:
        async with client(mine) as a, client(other_key) as a2, client(bobs) as b:
            first = (await a.post("/v1/sessions", json={})).json()["id"]
            second = (await a.post("/v1/sessions", json={"idle_s": 60})).json()["id"]
            await a2.post("/v1/sessions", json={})
            listed = await a.get("/v1/sessions")
            assert listed.status_code == 200
            assert [s["id"] for s in listed.json()] == [first, second]
            assert listed.json()[1]["idle_s"] == 60 and listed.json()[1]["surface"] == "rest"
            slash = await a.get("/v1/sessions/")
            assert slash.status_code == 200 and slash.json() == listed.json()
            assert len((await a2.get("/v1/sessions")).json()) == 1
            assert (await b.get("/v1/sessions")).json() == []
            await a.delete(f"/v1/sessions/{first}")
            assert [s["id"] for s in (await a.get("/v1/sessions")).json()] == [second]

    asyncio.run(main())


def test_both_clients_list_the_keys_sessions(make_orc: MakeOrc) -> None:
    orc = make_orc()
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    key = keys.create("alice")[1]
    app = create_app(orchestrator=orc, keys=keys)

    with Client("http://api", key, transport=_SyncAsgi(app)) as client:
        assert client.sessions() == []
        s = client.session(profile="default")
        (info,) = client.sessions()
        assert info.id == s.id and info.owner == "alice" and info.profile == "default"

    async def main() -> None:
        async with AsyncClient("http://api", key, transport=httpx.ASGITransport(app=app)) as client:
            assert [i.id for i in await client.sessions()] == [s.id]

    asyncio.run(main())


class _SyncAsgi(httpx.BaseTransport):
    """An ASGI app behind httpx's sync interface (one event loop per request)."""

    def __init__(self, app: object) -> None:
        self._inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def go() -> httpx.Response:
            response = await self._inner.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body)

        return asyncio.run(go())
