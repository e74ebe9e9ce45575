"""Core admission: keys, rates, profiles, run slots and session caps, without any surface."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.audit import AuditKeys, AuditLog
from sandbox.core.admission import Admission, Principal, RunSlots, abandon
from sandbox.core.registry import SessionRegistry
from sandbox.exceptions import (
    AuthenticationError,
    NotFoundError,
    ProfileNotAllowedError,
    QueueFullError,
    RateLimitedError,
    TooManySessionsError,
)
from sandbox.keys import KeyStore
from sandbox.settings import ApiSettings


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    log = AuditLog(tmp_path / "audit.log", AuditKeys.load_or_create(tmp_path / "k.json"))
    yield log
    log.close()


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.json")


def admission(audit: AuditLog, keys: KeyStore, **rules: object) -> Admission:
    return Admission(ApiSettings(**rules), audit, "ctl", keys)  # type: ignore[arg-type]


def events(a: Admission, audit: AuditLog, name: str) -> list[dict[str, object]]:
    a.flush()
    return [r for r in audit.read() if r.get("event") == name]


def test_a_missing_or_wrong_key_is_refused_and_audited(audit: AuditLog, keys: KeyStore) -> None:
    _, secret = keys.create("alice")
    a = admission(audit, keys)
    # The last character changed (to "A", or "B" when it was an "A": 1 run in 64 failed).
    typo = secret[:-1] + ("B" if secret.endswith("A") else "A")
    for bad in (None, "", "sbx_000000000000_" + "x" * 43, typo):
        with pytest.raises(AuthenticationError):
            a.authenticate(bad, surface="rest", client="10.0.0.1")
    failures = events(a, audit, "auth_failure")
    # Aggregated: one record per kind and interval, with a count.
    assert sum(int(f["count"]) for f in failures) == 4  # type: ignore[call-overload]
    assert {f["surface"] for f in failures} == {"rest"}
    assert all(secret not in str(f) for f in failures)


def test_a_key_names_its_owner_and_profiles(audit: AuditLog, keys: KeyStore) -> None:
    _, secret = keys.create("alice", ["strict"])
    p = admission(audit, keys).authenticate(secret, surface="mcp-http")
    assert p.owner == "alice" and p.profiles == ("strict",) and not p.key_id.startswith("local:")


def test_the_request_rate_is_per_key_and_audited(audit: AuditLog, keys: KeyStore) -> None:
    _, a_key = keys.create("alice")
    _, b_key = keys.create("bob")
    a = admission(audit, keys, rate_per_s=0.001, rate_burst=2)
    a.authenticate(a_key, surface="rest")
    a.authenticate(a_key, surface="mcp-http")
    with pytest.raises(RateLimitedError) as err:
        a.authenticate(a_key, surface="mcp-http")
    assert err.value.retry_after is not None and err.value.retry_after >= 1
    a.authenticate(b_key, surface="rest")  # another key has its own bucket
    limited = events(a, audit, "rate_limited")
    assert [r["surface"] for r in limited] == ["mcp-http"] and limited[0]["owner"] == "alice"


def test_a_key_gets_only_its_profiles(audit: AuditLog, keys: KeyStore) -> None:
    a = admission(audit, keys)
    strict = Principal("alice", "k1", ("strict",))
    assert a.profile_for(strict, None, surface="mcp-http") == "strict"
    assert a.profile_for(strict, "strict", surface="rest") == "strict"
    with pytest.raises(ProfileNotAllowedError) as err:
        a.profile_for(strict, "default", surface="mcp-stdio")
    assert isinstance(err.value, NotFoundError)  # refused like a missing profile
    assert a.profile_for(Principal("bob", "k2"), None, surface="rest") == "default"
    refused = events(a, audit, "admission_refused")
    assert refused[0]["reason"] == "profile_not_allowed" and refused[0]["surface"] == "mcp-stdio"


def test_run_slots_hold_the_per_key_and_total_caps() -> None:
    slots = RunSlots(per_key=1, total=2, queue=8)
    a1 = slots.request("a").result(0)
    a2 = slots.request("a")
    b1 = slots.request("b").result(0)
    c1 = slots.request("c")
    assert not a2.done() and not c1.done() and slots.in_use() == 2
    a1.release()
    # a's waiter fits now (a is at 0, total 1 of 2); c still waits for the total.
    assert a2.result(0).key_id == "a" and not c1.done()
    b1.release()
    assert c1.result(0).key_id == "c"
    a1.release()  # releasing twice frees nothing more
    assert slots.in_use() == 2


def test_a_key_at_its_cap_does_not_hold_up_other_keys() -> None:
    slots = RunSlots(per_key=1, total=4, queue=8)
    slots.request("a").result(0)
    waiting_a = slots.request("a")
    b = slots.request("b")
    assert b.done() and not waiting_a.done()


def test_the_queue_is_bounded() -> None:
    slots = RunSlots(per_key=1, total=1, queue=2)
    slots.request("a").result(0)
    slots.request("b")
    slots.request("c")
    with pytest.raises(QueueFullError):
        slots.request("d")


def test_an_abandoned_request_frees_its_place_and_its_slot() -> None:
    slots = RunSlots(per_key=1, total=1, queue=1)
    held = slots.request("a").result(0)
    waiting = slots.request("b")
    abandon(waiting)  # cancelled while queued: its place is free again
    later = slots.request("c")
    held.release()
    slot_c = later.result(0)
    granted_then_abandoned = slots.request("d")
    slot_c.release()  # d is granted here ...
    abandon(granted_then_abandoned)  # ... and given back when its waiter has gone
    assert slots.in_use() == 0


def test_run_slot_waits_are_bounded_and_audited(audit: AuditLog, keys: KeyStore) -> None:
    a = admission(audit, keys, runs_per_key=1, runs_total=1, run_queue=4)
    alice = a.local("alice")
    with a.run_slot(alice, surface="cli", timeout=1):
        bob = a.run_slot(Principal("bob", "kb"), surface="rest", timeout=0.05)
        with pytest.raises(QueueFullError):
            bob.__enter__()
    with a.run_slot(alice, surface="cli", timeout=1) as slot:  # freed after the block
        assert slot.held
    assert events(a, audit, "admission_refused")[0]["reason"] == "queue_timeout"
    assert a.slots.in_use() == 0


def test_many_threads_never_pass_the_slot_caps() -> None:
    slots = RunSlots(per_key=2, total=3, queue=1000)
    lock = threading.Lock()
    active: dict[str, int] = {}
    peak = {"total": 0, "per_key": 0}

    def one(key: str) -> None:
        slot = slots.request(key).result(10)
        with lock:
            active[key] = active.get(key, 0) + 1
            peak["total"] = max(peak["total"], sum(active.values()))
            peak["per_key"] = max(peak["per_key"], active[key])
        with lock:
            active[key] -= 1
        slot.release()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, [f"k{i % 5}" for i in range(500)]))
    assert peak["total"] <= 3 and peak["per_key"] <= 2 and slots.in_use() == 0


@dataclass
class _S:
    id: str
    owner: str


def test_parallel_opens_never_pass_the_session_cap() -> None:
    reg: SessionRegistry[_S] = SessionRegistry(per_owner=4, total=100)
    barrier = threading.Barrier(10)
    opened: list[str] = []

    def open_one(i: int) -> None:
        barrier.wait(5)
        try:
            reg.reserve("alice", f"s{i}")
        except TooManySessionsError:
            return
        reg.fill(_S(f"s{i}", "alice"))
        opened.append(f"s{i}")

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(opened) == 4 and len(reg.all("alice")) == 4


def test_the_total_session_cap_counts_every_owner() -> None:
    reg: SessionRegistry[_S] = SessionRegistry(per_owner=10, total=2)
    reg.reserve("a", "1")
    reg.reserve("b", "2")
    with pytest.raises(TooManySessionsError):
        reg.reserve("c", "3")
    reg.cancel("2")
    reg.reserve("c", "3")


def test_another_owners_session_looks_missing() -> None:
    reg: SessionRegistry[_S] = SessionRegistry(per_owner=10, total=10)
    reg.reserve("alice", "s1")
    reg.fill(_S("s1", "alice"))
    assert reg.owned("alice", "s1").id == "s1"
    with pytest.raises(NotFoundError) as theirs:
        reg.owned("bob", "s1")
    with pytest.raises(NotFoundError) as missing:
        reg.owned("bob", "nope")
    assert str(theirs.value) == str(missing.value)


def test_one_key_cannot_fill_the_shared_queue() -> None:
    slots = RunSlots(per_key=1, total=1, queue=10, queue_per_key=2)
    slots.request("a").result(0)
    slots.request("a")
    slots.request("a")
    with pytest.raises(QueueFullError):
        slots.request("a")  # its own share of the queue is full
    assert not slots.request("b").done()  # another key still gets a place in line
