"""Upstream servers per owner: own processes, own credentials, bounded, reaped when idle.

These start real stdio MCP servers (tests/servers/tenant.py) on the host; no engine needed.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.bridge.config import load_config
from sandbox.bridge.pool import Key, UpstreamPool
from sandbox.bridge.upstream import UpstreamCallError, UpstreamCapacityError
from sandbox.exceptions import InvalidInputError
from sandbox.models import ToolLimits
from sandbox.runtime import protocol
from sandbox.secrets import SecretStore

TENANT = str(Path(__file__).parents[1] / "servers" / "tenant.py")
TENANT_HTTP = str(Path(__file__).parents[1] / "servers" / "tenant_http.py")
IDLE = 300.0


def tenant(**extra: object) -> dict[str, object]:
    return {"command": sys.executable, "args": [TENANT], **extra}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


MakePool = Callable[..., UpstreamPool]


@pytest.fixture
def make_pool(clock: Clock) -> Iterator[MakePool]:
    made: list[UpstreamPool] = []

    def make(config: dict[str, Any], resolve: Any = None, **limits: Any) -> UpstreamPool:
        pool = UpstreamPool(
            load_config(config),
            ToolLimits(upstream_idle_s=IDLE, **limits),
            resolve=resolve,
            clock=clock,
        )
        made.append(pool)
        return pool

    yield make
    for pool in made:
        pool.close()


def call(pool: UpstreamPool, server: str, tool: str, owner: str | None, **args: Any) -> Any:
    return pool.submit(pool.call(server, tool, args, 10, owner=owner)).result(30)


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_each_owner_gets_its_own_process_and_sees_only_its_own_data(make_pool: MakePool) -> None:
    pool = make_pool({"mcpServers": {"notes": tenant()}})
    assert pool.connections() == []  # the listing's process is gone; owners start their own
    assert call(pool, "notes", "remember", "alice", text="alice's queued mail") == 1
    assert call(pool, "notes", "recall", "bob") == []
    assert call(pool, "notes", "recall", "alice") == ["alice's queued mail"]
    alice, bob = (call(pool, "notes", "whoami", o)["pid"] for o in ("alice", "bob"))
    assert alice != bob
    assert sorted(pool.connections(), key=str) == [("notes", "alice"), ("notes", "bob")]


def test_a_shared_server_keeps_one_process_for_every_owner(make_pool: MakePool) -> None:
    pool = make_pool({"mcpServers": {"notes": tenant(shared=True)}})
    assert pool.connections() == [("notes", None)]
    call(pool, "notes", "remember", "alice", text="for everyone")
    assert call(pool, "notes", "recall", "bob") == ["for everyone"]
    pids = {call(pool, "notes", "whoami", o)["pid"] for o in ("alice", "bob", "carol", None)}
    assert len(pids) == 1
    assert pool.connections() == [("notes", None)]


def test_a_server_at_its_cap_refuses_a_new_owner_with_a_typed_error(
    make_pool: MakePool, clock: Clock
) -> None:
    pool = make_pool({"mcpServers": {"notes": tenant()}}, max_upstreams_per_server=2)
    call(pool, "notes", "whoami", "alice")
    call(pool, "notes", "whoami", "bob")
    with pytest.raises(UpstreamCapacityError, match="already runs for 2 owners") as err:
        call(pool, "notes", "whoami", "carol")
    assert err.value.code == protocol.UNAVAILABLE
    call(pool, "notes", "whoami", "alice")  # owners already running are not refused
    clock.now += IDLE  # both idle now: the next new owner's call stops them and starts
    call(pool, "notes", "whoami", "carol")
    assert pool.connections() == [("notes", "carol")]


def test_the_total_cap_counts_every_servers_connections(make_pool: MakePool) -> None:
    pool = make_pool({"mcpServers": {"a": tenant(), "b": tenant()}}, max_upstreams=3)
    for server, owner in (("a", "alice"), ("a", "bob"), ("b", "alice")):
        call(pool, server, "whoami", owner)
    with pytest.raises(UpstreamCapacityError, match="already runs 3 per-owner"):
        call(pool, "b", "whoami", "bob")


def test_shared_servers_do_not_count_against_the_caps(make_pool: MakePool) -> None:
    pool = make_pool(
        {"mcpServers": {"common": tenant(shared=True), "notes": tenant()}}, max_upstreams=1
    )
    call(pool, "notes", "whoami", "alice")
    call(pool, "common", "whoami", "bob")
    with pytest.raises(UpstreamCapacityError):
        call(pool, "notes", "whoami", "bob")


def test_idle_connections_are_stopped_with_their_processes(
    make_pool: MakePool, clock: Clock
) -> None:
    pool = make_pool({"mcpServers": {"notes": tenant(), "common": tenant(shared=True)}})
    pid = call(pool, "notes", "whoami", "alice")["pid"]
    shared = call(pool, "common", "whoami", "alice")["pid"]
    assert pool.submit(pool.reap_idle(clock.now + IDLE - 1)).result(10) == []
    assert pool.submit(pool.reap_idle(clock.now + IDLE)).result(10) == [("notes", "alice")]
    assert not alive(pid)
    assert alive(shared) and pool.connections() == [("common", None)]  # shared: never reaped
    assert call(pool, "notes", "recall", "alice") == []  # a fresh process on the next call


def test_a_connection_with_a_call_in_flight_is_never_reaped(
    make_pool: MakePool, clock: Clock
) -> None:
    pool = make_pool({"mcpServers": {"notes": tenant()}})
    call(pool, "notes", "whoami", "alice")

    async def reap_during_a_call() -> tuple[list[Key], Any]:
        slow = asyncio.create_task(pool.call("notes", "wait", {"seconds": 0.2}, 10, owner="alice"))
        await asyncio.sleep(0)  # the call's first step: counted in flight, then it waits
        reaped = await pool.reap_idle(clock.now + 10 * IDLE)
        return reaped, await slow

    assert pool.submit(reap_during_a_call()).result(10) == ([], "done")
    assert pool.connections() == [("notes", "alice")]


def test_an_owners_own_server_is_theirs_alone(make_pool: MakePool) -> None:
    pool = make_pool({"mcpServers": {}, "owners": {"alice": {"mcpServers": {"diary": tenant()}}}})
    assert [t.name for t in pool.tools()] == []
    assert sorted(t.name for t in pool.tools("alice")) == ["recall", "remember", "wait", "whoami"]
    assert pool.tools("bob") == [] and pool.owners() == ["alice"]
    call(pool, "diary", "remember", "alice", text="dear diary")
    for stranger in ("bob", None):
        with pytest.raises(UpstreamCallError) as err:
            call(pool, "diary", "recall", stranger)
        assert err.value.code == protocol.NOT_FOUND


def test_secrets_resolve_for_the_connections_identity(tmp_path: Path, make_pool: MakePool) -> None:
    store = SecretStore(tmp_path / "secrets.json", b"k" * 32)
    store.set("TOKEN", "deployment-token")
    store.set("TOKEN", "alice-token", owner="alice")
    store.set("TOKEN", "carol-token", owner="carol")
    env = {"TENANT_TOKEN": "${secret:TOKEN}"}
    pool = make_pool(
        {
            "mcpServers": {"notes": tenant(env=env), "common": tenant(env=env, shared=True)},
            "owners": {"carol": {"mcpServers": {"diary": tenant(env=env)}}},
        },
        resolve=store.resolve,
    )

    def token(server: str, owner: str) -> str:
        return str(call(pool, server, "whoami", owner)["token"])

    assert token("notes", "alice") == "alice-token"  # the owner's own first
    assert token("notes", "bob") == "deployment-token"  # else the deployment's
    assert token("common", "alice") == "deployment-token"  # a shared server: the deployment's
    assert token("diary", "carol") == "carol-token"


def test_an_owners_server_never_falls_back_to_a_deployment_secret(make_pool: MakePool) -> None:
    asked: list[tuple[str | None, bool]] = []

    def resolve(text: str, owner: str | None = None, *, deployment: bool = True) -> str:
        asked.append((owner, deployment))
        return text

    env = {"TENANT_TOKEN": "${secret:TOKEN}"}
    make_pool(
        {
            "mcpServers": {"common": tenant(env=env, shared=True)},
            "owners": {"carol": {"mcpServers": {"diary": tenant(env=env)}}},
        },
        resolve=resolve,
    )
    assert set(asked) == {("carol", False), (None, True)}


def test_status_calls_a_listed_per_owner_server_ready(make_pool: MakePool) -> None:
    pool = make_pool({"mcpServers": {"notes": tenant(), "common": tenant(shared=True)}})
    assert pool.status() == {"notes": "ready", "common": "ready"}


def test_a_closed_pool_stops_every_process(make_pool: MakePool) -> None:
    pool = make_pool({"mcpServers": {"notes": tenant(), "common": tenant(shared=True)}})
    pids = [call(pool, s, "whoami", "alice")["pid"] for s in ("notes", "common")]
    pool.close()
    assert not any(alive(p) for p in pids)


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    """A multi-tenant HTTP server: notes kept apart by the caller's credential."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, TENANT_HTTP, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                pytest.fail("the HTTP test server exited")
            time.sleep(0.05)  # no event to wait on: another process opening a port
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


def test_each_owner_calls_a_remote_server_with_their_own_credentials(
    tmp_path: Path, make_pool: MakePool, remote: str
) -> None:
    store = SecretStore(tmp_path / "secrets.json", b"k" * 32)
    store.set("TOKEN", "deployment-token")
    store.set("TOKEN", "alice-token", owner="alice")
    store.set("TOKEN", "bob-token", owner="bob")
    headers = {"Authorization": "Bearer ${secret:TOKEN}"}
    pool = make_pool(
        {
            "mcpServers": {
                "remote": {"url": remote, "headers": headers},
                "common": {"url": remote, "headers": headers, "shared": True},
            }
        },
        resolve=store.resolve,
    )
    assert pool.connections() == [("common", None)]
    call(pool, "remote", "remember", "alice", text="alice's note")
    assert call(pool, "remote", "recall", "bob") == []
    assert call(pool, "remote", "recall", "alice") == ["alice's note"]
    who = {o: call(pool, "remote", "whoami", o) for o in ("alice", "bob", "carol")}
    assert len(set(who.values())) == 3  # carol has none of her own: the deployment's
    assert call(pool, "common", "whoami", "alice") == who["carol"]


def test_a_hung_call_restarts_only_its_owners_process(make_pool: MakePool) -> None:
    pool = make_pool({"mcpServers": {"notes": tenant()}})
    alice, bob = (call(pool, "notes", "whoami", o)["pid"] for o in ("alice", "bob"))
    hung = pool.call("notes", "wait", {"seconds": 30}, 0.3, owner="alice")
    with pytest.raises(UpstreamCallError) as err:
        pool.submit(hung).result(30)
    assert err.value.code == protocol.TIMEOUT and err.value.restarted
    assert call(pool, "notes", "whoami", "bob")["pid"] == bob
    assert call(pool, "notes", "whoami", "alice")["pid"] != alice


def test_owner_fills_a_per_owner_place_and_is_refused_on_a_shared_server(
    make_pool: MakePool,
) -> None:
    env = {"TENANT_TOKEN": "data-of-${owner}"}
    pool = make_pool({"mcpServers": {"notes": tenant(env=env)}})
    assert call(pool, "notes", "whoami", "alice")["token"] == "data-of-alice"
    assert call(pool, "notes", "whoami", None)["token"] == "data-of-.deployment"
    with pytest.raises(InvalidInputError, match="no owner to fill"):
        load_config({"mcpServers": {"notes": tenant(env=env, shared=True)}})


def test_listing_many_owners_servers_at_start_runs_a_few_at_a_time(clock: Clock) -> None:
    class Counting(UpstreamPool):
        peak = 0

        def _start(self, key: Key, spec: Any, own: bool) -> Any:
            conn = super()._start(key, spec, own)
            Counting.peak = max(Counting.peak, len(self.connections()))
            return conn

    owners = {f"o{i}": {"mcpServers": {f"s{i}": tenant()}} for i in range(20)}
    pool = Counting(load_config({"mcpServers": {}, "owners": owners}), clock=clock)
    try:
        assert Counting.peak == 8
        assert pool.connections() == []
        assert {t.server for t in pool.tools("o7")} == {"s7"}
    finally:
        pool.close()
