"""The Python client against a real uvicorn server over the local-process backend: the
remote sessions do what the embedded one does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from sandbox.client import AsyncClient, Client
from sandbox.exceptions import NotFoundError, QueueFullError, UnsafePathError
from sandbox.keys import KeyStore
from sandbox.models import OutputEvent, RunResult
from tests.integration.test_http_api import Server
from tests.unit.conftest import MakeOrc


@pytest.fixture
def served(make_orc: MakeOrc) -> Iterator[tuple[str, str, Server]]:
    # One run at a time per key; a second waits up to 0.5 s (the first one's container removal)
    # and is refused after that.
    orc = make_orc(api={"runs_per_key": 1, "run_queue": 4, "run_queue_wait_s": 0.5})
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    secret = keys.create("alice")[1]
    with Server(orc, keys) as server:
        yield server.url, secret, server


def test_a_remote_session_works_like_an_embedded_one(served: tuple[str, str, Server]) -> None:
    url, key, _ = served
    with Client(url, key) as client, client.session() as s:
        assert s.run("print(6 * 7)").stdout == "42\n"
        s.upload("d/x.txt", b"abc")
        assert s.download("d/x.txt") == b"abc"
        assert "d/x.txt" in [e.path for e in s.list_files()]
        assert s.read_text("d/x.txt") == "abc"
        events = list(s.stream("print(1)\nprint(2)"))
        assert isinstance(events[-1], RunResult) and isinstance(events[0], OutputEvent)
        s.save_skill("k.py", b"x = 1")
        assert s.read_skill("k.py") == b"x = 1"
        s.delete_skill("k.py")
        with pytest.raises(UnsafePathError):
            s.upload("../x", b"x")
        with pytest.raises(NotFoundError):
            s.download("nope")


def test_the_async_client_streams_and_maps_refusals(served: tuple[str, str, Server]) -> None:
    url, key, server = served

    async def main() -> None:
        async with AsyncClient(url, key) as client:
            s = await client.session()
            first: OutputEvent | RunResult | None = None
            async for event in s.stream("import time\nprint('a', flush=True)\ntime.sleep(0.3)"):
                first = first or event
            assert isinstance(first, OutputEvent) and first.text == "a\n"
            for _ in range(400):  # bounded: the slot is free once that run's container is gone
                if server.orc.admission.slots.in_use() == 0:
                    break
                await asyncio.sleep(0.01)
            # While a run holds the key's only slot, a second is refused with a typed error.
            holder = asyncio.ensure_future(s.run("import time; time.sleep(1.5)"))
            for _ in range(300):  # bounded: until the first run holds the slot
                if server.orc.admission.slots.in_use() == 1:
                    break
                await asyncio.sleep(0.01)
            with pytest.raises(QueueFullError):
                await s.run("print(1)")
            assert (await holder).exit_code == 0
            await s.save_skill("a.py", b"1")
            assert [e.path for e in await s.list_skills()] == ["a.py"]
            await s.aclose()

    asyncio.run(main())


def test_a_dropped_stream_cancels_its_run_and_frees_the_slot_once_the_box_is_gone(
    served: tuple[str, str, Server],
) -> None:
    url, key, server = served
    slots = server.orc.admission.slots
    with Client(url, key) as client, client.session() as s:
        events = s.stream("import time\nprint('go', flush=True)\ntime.sleep(60)")
        assert isinstance(next(events), OutputEvent)
        events.close()  # the client hangs up mid-run: the run is killed, not left to time out
        for _ in range(400):  # bounded: until the killed run's container is gone
            if slots.in_use() == 0:
                break
            threading.Event().wait(0.025)
        assert slots.in_use() == 0
        assert s.run("print(2)").stdout == "2\n"
        ends = [r for r in server.orc.audit.read() if r["event"] == "run_end"]
        assert [r["outcome"] for r in ends] == ["cancelled", "ok"]
