"""The Orchestrator and Session on the local-process backend: the core's logic, fast."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sandbox import Orchestrator
from sandbox.exceptions import (
    InvalidInputError,
    NotFoundError,
    PolicyViolationError,
    QueueFullError,
    SessionClosedError,
    TooManySessionsError,
    UnsafePathError,
)
from sandbox.models import OutputEvent, RunResult
from tests.unit.conftest import MakeOrc


def test_a_run_returns_its_output_and_exit_code(local_orc: Orchestrator) -> None:
    with local_orc.session(owner="alice") as s:
        r = s.run("import sys\nprint(6 * 7)\nprint('oops', file=sys.stderr)\nsys.exit(3)")
    assert (r.stdout, r.stderr, r.exit_code) == ("42\n", "oops\n", 3)
    assert r.outcome == "nonzero_exit" and not r.timed_out


def test_the_workspace_carries_over_between_runs_of_a_session_only(
    local_orc: Orchestrator,
) -> None:
    with local_orc.session(owner="alice") as a, local_orc.session(owner="alice") as b:
        a.run("open('note.txt', 'w').write('hi')")
        assert a.run("print(open('note.txt').read())").stdout == "hi\n"
        assert a.download("note.txt") == b"hi"
        assert b.run("import os; print(os.listdir('.'))").stdout == "[]\n"


def test_every_run_is_a_new_process(local_orc: Orchestrator) -> None:
    with local_orc.session(owner="alice") as s:
        pids = {s.run("import os; print(os.getpid())").stdout for _ in range(3)}
    assert len(pids) == 3


def test_a_run_past_its_timeout_is_reported_not_raised(local_orc: Orchestrator) -> None:
    with local_orc.session(owner="alice") as s:
        r = s.run("import time\nprint('start', flush=True)\ntime.sleep(30)", timeout=0.5)
        assert r.timed_out and r.exit_code == 137 and r.stdout == "start\n"
        assert s.run("print('next')").stdout == "next\n"


def test_an_output_flood_is_capped_exactly(make_orc: MakeOrc) -> None:
    orc = make_orc(limits={"output_bytes": 4096})
    with orc.session(owner="alice") as s:
        r = s.run("print('x' * 100_000)")
    assert r.output_truncated and len(r.stdout) == 4096


def test_stream_yields_output_before_the_result(local_orc: Orchestrator) -> None:
    with local_orc.session(owner="alice") as s:
        events = list(s.stream("print(1)\nprint(2)"))
    assert isinstance(events[-1], RunResult) and events[-1].stdout == "1\n2\n"
    assert all(isinstance(e, OutputEvent) for e in events[:-1]) and len(events) >= 2


def test_stream_raises_the_errors_of_run(local_orc: Orchestrator) -> None:
    with local_orc.session(owner="alice") as s, pytest.raises(InvalidInputError):
        list(s.stream("print(1)", timeout=-1))


def test_bad_input_gets_typed_errors(local_orc: Orchestrator) -> None:
    with local_orc.session(owner="alice") as s:
        for bad in ({"timeout": 10_000}, {"env": {"BAD NAME": "x"}}):
            with pytest.raises(InvalidInputError):
                s.run("print(1)", **bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            s.run("x\x00")
        with pytest.raises(UnsafePathError):
            s.upload("../x", b"x")
        assert s.run("print('ok')").stdout == "ok\n"
    with pytest.raises(InvalidInputError):
        local_orc.session(owner="../root")


def test_every_run_has_one_start_and_one_end_record(local_orc: Orchestrator) -> None:
    with local_orc.session(owner="alice") as s:
        s.run("print(1)")
        s.run("import time; time.sleep(5)", timeout=0.2)
        with pytest.raises(InvalidInputError):
            s.run("print(1)", timeout=-1)  # refused before any record
    records = local_orc.audit.read()
    starts = [r["exec_id"] for r in records if r["event"] == "run_start"]
    ends = [r["exec_id"] for r in records if r["event"] == "run_end"]
    assert len(starts) == 2 and sorted(starts) == sorted(ends)


def test_a_closed_session_is_gone(local_orc: Orchestrator) -> None:
    s = local_orc.session(owner="alice")
    s.close()
    s.close()  # idempotent
    with pytest.raises(SessionClosedError):
        s.run("print(1)")
    with pytest.raises(NotFoundError):
        local_orc.get_session(s.id)


def test_the_session_cap_counts_embedded_sessions_too(make_orc: MakeOrc) -> None:
    orc = make_orc(api={"sessions_per_owner": 2}, warm=False)
    a, b = orc.session(owner="alice"), orc.session(owner="alice")
    with pytest.raises(TooManySessionsError):
        orc.session(owner="alice")
    orc.session(owner="bob").close()  # another owner has room
    a.close()
    orc.session(owner="alice").close()
    b.close()


def test_parallel_embedded_opens_never_pass_the_cap(make_orc: MakeOrc) -> None:
    orc = make_orc(api={"sessions_per_owner": 3}, warm=False)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def open_one() -> None:
        barrier.wait(5)
        try:
            orc.session(owner="alice")
            outcomes.append("open")
        except TooManySessionsError:
            outcomes.append("refused")

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["open"] * 3 + ["refused"] * 5
    assert len(orc.sessions("alice")) == 3


def test_allowed_profiles_limit_what_a_caller_may_pick(local_orc: Orchestrator) -> None:
    with pytest.raises(NotFoundError):
        local_orc.session(owner="alice", profile="data-science", allowed_profiles=("default",))
    with pytest.raises(NotFoundError):
        local_orc.session(owner="alice", profile="no-such-profile")


def test_an_open_session_records_its_surface_and_profile(local_orc: Orchestrator) -> None:
    local_orc.session(owner="alice").close()
    opened = [r for r in local_orc.audit.read() if r["event"] == "session_open"]
    assert opened[-1]["surface"] == "embedded" and opened[-1]["profile"] == "default"


def test_run_slots_apply_to_embedded_runs(make_orc: MakeOrc) -> None:
    orc = make_orc(api={"runs_per_key": 1, "run_queue": 0, "run_queue_wait_s": 5})
    with orc.session(owner="alice") as a, orc.session(owner="alice") as b:
        started = threading.Event()

        def slow() -> None:
            a.run(
                "import os, time\nopen('/dev/null').close()\n"
                "for _ in range(400):\n    time.sleep(0.025)\n    if os.path.exists('go'): break",
                on_output=lambda *_: None,
            )

        t = threading.Thread(target=slow)
        t.start()
        for _ in range(400):  # bounded: until a holds the owner's only slot
            if orc.admission.slots.in_use() == 1:
                started.set()
                break
            threading.Event().wait(0.01)
        assert started.is_set()
        with pytest.raises(QueueFullError):
            b.run("print(1)")
        a.upload("go", b"")
        t.join(30)
        a.settle()  # the slot is free once a's container is gone
        assert b.run("print(2)").stdout == "2\n"


def test_static_analysis_blocks_in_a_blocking_profile(make_orc: MakeOrc, tmp_path) -> None:  # type: ignore[no-untyped-def]
    profiles = tmp_path / "p.json"
    profiles.write_text('{"profiles": {"tight": {"static_analysis": "block"}}}')
    orc = make_orc(profiles=profiles)
    with orc.session(owner="alice", profile="tight") as s, pytest.raises(PolicyViolationError):
        s.run("import ctypes")
    assert any(r["event"] == "policy_violation" for r in orc.audit.read())


def test_expiry_closes_idle_sessions_only(local_orc: Orchestrator) -> None:
    idle = local_orc.session(owner="alice", idle_s=10)
    busy = local_orc.session(owner="alice")
    now = idle.last_used + 11
    assert local_orc.expire_sessions(now) == [idle.id]
    assert idle.closed and not busy.closed
    busy.close()


def test_skills_persist_for_the_owner_and_are_read_only_inside(local_orc: Orchestrator) -> None:
    with local_orc.session(owner="alice") as s:
        s.save_skill("etl/clean.py", b"def clean(x):\n    return x.strip()\n")
        assert "etl/clean.py" in [e.path for e in s.list_skills()]
    assert local_orc.skills("alice").read("etl/clean.py").startswith(b"def clean")
    assert local_orc.skills("bob").list() == []


def test_a_run_slot_is_held_until_the_container_is_gone(make_orc: MakeOrc) -> None:
    orc = make_orc(warm=False)
    gate = threading.Event()
    remove = orc.backend.remove

    def slow_remove(ref: object) -> None:
        gate.wait(10)
        remove(ref)  # type: ignore[arg-type]

    orc.backend.remove = slow_remove  # type: ignore[method-assign]
    with orc.session(owner="alice") as s:
        assert s.run("print(1)").stdout == "1\n"
        assert orc.admission.slots.in_use() == 1  # the result is back, the container is not gone
        gate.set()
        s.settle()
        assert orc.admission.slots.in_use() == 0


def test_a_refused_run_gives_its_slot_back(local_orc: Orchestrator) -> None:
    admission = local_orc.admission
    with local_orc.session(owner="alice") as s:
        for bad in ({"code": "print(1)", "timeout": -1}, {"code": "x\x00"}):
            slot = admission.acquire(s.principal, surface="rest", timeout=1)
            with pytest.raises(InvalidInputError):
                s.run(**bad, slot=slot)  # type: ignore[arg-type]
            assert not slot.held
        # Another key of the same owner may run in the session (as REST allows it), its slot
        # counting against that key.
        other_key = admission.acquire(admission.local("alice2"), surface="rest", timeout=1)
        assert s.run("print(1)", slot=other_key).stdout == "1\n"
        s.settle()
        assert admission.slots.in_use() == 0


def test_tool_patterns_are_checked_in_the_core(local_orc: Orchestrator) -> None:
    for bad in (["x" * 2_000_000], ["crm"], ["crm.get; rm"], "crm.*", ["a.b"] * 257, [7]):
        with pytest.raises(InvalidInputError):
            local_orc.session(owner="alice", tools=bad)  # type: ignore[arg-type]
    assert local_orc.sessions() == []
    with local_orc.session(owner="alice", tools=["crm.*", "mailer.send_email"]) as s:
        assert s.tools == ("crm.*", "mailer.send_email")


def test_a_run_waiting_behind_another_does_not_start_after_close(
    local_orc: Orchestrator, tmp_path: Path
) -> None:
    s = local_orc.session(owner="alice")
    slots = local_orc.admission.slots
    go = tmp_path / "go"  # the local backend's boxes see the host: the test lets the first end
    outcomes: list[str] = []

    def run(code: str) -> None:
        try:
            outcomes.append(s.run(code).stdout)
        except SessionClosedError:
            outcomes.append("closed")

    def wait_for(n: int) -> None:
        for _ in range(400):  # bounded
            if slots.in_use() == n:
                return
            threading.Event().wait(0.01)

    slow = (
        f"import os, time\nwhile not os.path.exists({str(go)!r}):\n    time.sleep(0.02)\nprint('a')"
    )
    first = threading.Thread(target=run, args=(slow,))
    first.start()
    wait_for(1)  # the first run holds the session
    second = threading.Thread(target=run, args=("print('b')",))
    second.start()
    wait_for(2)  # the second has its slot and waits for the session
    closer = threading.Thread(target=s.close)
    closer.start()
    for _ in range(400):  # bounded: until close has begun
        if s.closed:
            break
        threading.Event().wait(0.01)
    go.write_text("")
    for t in (first, second, closer):
        t.join(30)
    assert sorted(outcomes) == ["a\n", "closed"]


def test_parallel_skill_saves_cannot_pass_the_owners_quota(make_orc: MakeOrc) -> None:
    from sandbox.exceptions import QuotaExceededError

    orc = make_orc(limits={"skills_mb": 1})
    store = orc.skills("alice")
    barrier = threading.Barrier(6)
    saved: list[str] = []

    def save(i: int) -> None:
        barrier.wait(5)
        try:
            store.save_chunks(f"s{i}.bin", iter([b"x" * 300_000]))
            saved.append(f"s{i}")
        except QuotaExceededError:
            pass

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(saved) == 3  # 3 x 300 kB fit in 1 MiB, a fourth does not
    assert sum(e.size for e in store.list()) <= 1024 * 1024
