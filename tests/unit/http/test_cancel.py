"""HTTP clients that go away cancel their runs (a real uvicorn server, local-process backend):
a dropped connection on /runs and in the middle of /runs/stream, and a client-side timeout of
the Python client (which sends an Idempotency-Key, so its run waits a grace for a retry)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from sandbox.client import Client
from sandbox.exceptions import SandboxError
from sandbox.keys import KeyStore
from tests.integration.test_http_api import Server
from tests.polling import wait_until
from tests.unit.conftest import MakeOrc

LONG = "import time\nprint('started', flush=True)\ntime.sleep(60)"


@pytest.fixture
def served(make_orc: MakeOrc) -> Iterator[tuple[Server, str]]:
    orc = make_orc(api={"runs_per_key": 1, "run_queue": 4, "run_queue_wait_s": 30})
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    with Server(orc, keys) as server:
        yield server, keys.create("alice")[1]


def records(server: Server, event: str) -> list[dict[str, Any]]:
    return [r for r in server.orc.audit.read() if r["event"] == event]


def raw_post(
    server: Server, key: str, path: str, body: dict[str, Any], idempotency_key: str = ""
) -> socket.socket:
    """Send a POST and leave its connection open, unread, for the caller to drop."""
    url = urlsplit(server.url)
    data = json.dumps(body).encode()
    sock = socket.create_connection((url.hostname or "", url.port or 80))
    extra = f"Idempotency-Key: {idempotency_key}\r\n" if idempotency_key else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n{extra}\r\n"
    )
    sock.sendall(head.encode() + data)
    return sock


def dropped_mid_run(served: tuple[Server, str], path: str) -> Client:
    server, key = served
    client = Client(server.url, key)
    sid = client.session().id
    sock = raw_post(server, key, f"/v1/sessions/{sid}/{path}", {"code": LONG})
    assert wait_until(lambda: len(records(server, "run_start")) == 1)
    if path == "runs/stream":  # the client has read the first event, then hangs up
        assert b"started" in sock.recv(65536) or b"started" in sock.recv(65536)
    sock.close()
    return client


@pytest.mark.parametrize("path", ["runs", "runs/stream"])
def test_a_client_that_disconnects_mid_run_cancels_it(
    served: tuple[Server, str], path: str
) -> None:
    server, _ = served
    with dropped_mid_run(served, path) as client:
        assert wait_until(lambda: len(records(server, "run_end")) == 1)
        assert records(server, "run_end")[0]["outcome"] == "cancelled"
        # The key's only slot comes back once the box is gone, and the session runs again.
        sid = server.orc.sessions("alice")[0].id
        r = client.request("POST", f"/v1/sessions/{sid}/runs", json={"code": "print(2)"})
        assert r.json()["stdout"] == "2\n"


def test_the_python_clients_timeout_cancels_its_run_after_the_retry_grace(
    served: tuple[Server, str],
) -> None:
    server, key = served
    with Client(server.url, key, timeout=2.0, retries=0) as client, client.session() as s:
        with pytest.raises(SandboxError):  # the client gives up on the read
            s.run(LONG)
        # It sent an Idempotency-Key, so the run waited a moment for a retry, then was killed
        # (or, on a slow machine, never started).
        assert wait_until(lambda: server.orc.admission.slots.in_use() == 0)
        ends = records(server, "run_end")
        assert [r["outcome"] for r in ends] in ([], ["cancelled"])
        assert s.run("print(3)").stdout == "3\n"


def test_a_keyed_request_dropped_mid_run_is_picked_up_by_its_retry(
    served: tuple[Server, str],
) -> None:
    server, key = served
    with Client(server.url, key) as client:
        sid = client.session().id
        path = f"/v1/sessions/{sid}/runs"
        body = {"code": "import time\nprint('once', flush=True)\ntime.sleep(1)"}
        sock = raw_post(server, key, path, body, idempotency_key="k1")
        assert wait_until(lambda: len(records(server, "run_start")) == 1)
        sock.close()  # the connection drops; the client retries at once with the same key
        again = client.request("POST", path, json=body, headers={"Idempotency-Key": "k1"})
        assert again.json()["stdout"] == "once\n"
        assert [r["outcome"] for r in records(server, "run_end")] == ["ok"]
        assert len(records(server, "run_start")) == 1


def test_a_disconnect_cancels_the_awaited_run_and_answers_cancelled() -> None:
    import asyncio

    from sandbox.core.cancel import RunCancelledError
    from sandbox.http_api.routes.runs import until_disconnect

    class Gone:
        async def receive(self) -> dict[str, str]:
            return {"type": "http.disconnect"}

    async def main() -> None:
        work = asyncio.ensure_future(asyncio.sleep(30))
        with pytest.raises(RunCancelledError):
            await until_disconnect(Gone(), work)  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the cancel reaches the work at its next step
        assert work.cancelled()

    asyncio.run(main())
