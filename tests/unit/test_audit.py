"""The audit trail's verifier names every tampering (THREATS J1-J10)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from pathlib import Path

import pytest

from sandbox.audit import AuditError, AuditKeys, AuditLog, verify


@pytest.fixture
def keys(tmp_path: Path) -> AuditKeys:
    return AuditKeys.load_or_create(tmp_path / "keys.json")


def trail(tmp_path: Path, keys: AuditKeys, n: int = 10) -> Path:
    log = AuditLog(tmp_path / "audit.log", keys)
    for i in range(n):
        log.record("run_start", exec_id=f"e{i}", owner="alice")
    log.close()
    return tmp_path / "audit.log"


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_an_intact_trail_verifies(tmp_path: Path, keys: AuditKeys) -> None:
    v = verify(trail(tmp_path, keys), keys)
    assert v.ok and v.records == 10 and v.problems == []


def test_a_flipped_byte_is_named_by_seq(tmp_path: Path, keys: AuditKeys) -> None:
    path = trail(tmp_path, keys)
    rows = lines(path)
    rows[4] = rows[4].replace(b'"alice"', b'"alicf"')
    path.write_bytes(b"".join(rows))
    v = verify(path, keys)
    assert not v.ok and any("seq 5" in p and "MAC mismatch" in p for p in v.problems)


def test_a_deleted_middle_record_is_found(tmp_path: Path, keys: AuditKeys) -> None:
    path = trail(tmp_path, keys)
    rows = lines(path)
    del rows[3]
    path.write_bytes(b"".join(rows))
    v = verify(path, keys)
    assert not v.ok and any("where 4 was expected" in p for p in v.problems)


def test_swapped_records_are_found(tmp_path: Path, keys: AuditKeys) -> None:
    path = trail(tmp_path, keys)
    rows = lines(path)
    rows[2], rows[3] = rows[3], rows[2]
    path.write_bytes(b"".join(rows))
    assert not verify(path, keys).ok


def test_a_truncated_tail_is_caught_by_the_checkpoint(tmp_path: Path, keys: AuditKeys) -> None:
    path = trail(tmp_path, keys)
    path.write_bytes(b"".join(lines(path)[:7]))
    v = verify(path, keys)
    assert not v.ok and any("truncated" in p for p in v.problems)


def test_a_record_forged_without_the_key_fails(tmp_path: Path, keys: AuditKeys) -> None:
    path = trail(tmp_path, keys)
    last = json.loads(lines(path)[-1])
    forged = {
        **last,
        "seq": last["seq"] + 1,
        "prev": last["mac"],
        "event": "key_created",
        "mac": hashlib.sha256(b"guess").hexdigest(),
    }
    path.write_bytes(path.read_bytes() + json.dumps(forged).encode() + b"\n")
    assert not verify(path, keys).ok


def test_a_chain_rebuilt_with_another_key_fails(tmp_path: Path, keys: AuditKeys) -> None:
    path = trail(tmp_path, keys)
    other = AuditKeys({"a1": b"x" * 32}, "a1")
    rebuilt = AuditLog(tmp_path / "rebuilt.log", other)
    for row in lines(path):
        rec = json.loads(row)
        rebuilt.record(rec["event"], exec_id=rec["exec_id"], owner=rec["owner"])
    rebuilt.close()
    assert verify(tmp_path / "rebuilt.log", other).ok
    assert not verify(tmp_path / "rebuilt.log", keys).ok


def test_a_torn_last_line_is_reported_then_recovered_on_record(
    tmp_path: Path, keys: AuditKeys
) -> None:
    path = trail(tmp_path, keys)
    path.write_bytes(path.read_bytes() + b'{"seq": 11, "event": "run_st')
    v = verify(path, keys)
    assert not v.ok and any("torn" in p for p in v.problems)
    log = AuditLog(path, keys)  # the next writer cuts it off, and says so in the trail
    log.record("run_end", exec_id="e9")
    log.close()
    records = [json.loads(r) for r in lines(path)]
    assert records[10]["event"] == "recovered" and records[10]["torn_bytes"] == len(
        b'{"seq": 11, "event": "run_st'
    )
    assert verify(path, keys).ok


def test_key_rotation_mid_trail_verifies(tmp_path: Path, keys: AuditKeys) -> None:
    log = AuditLog(tmp_path / "audit.log", keys)
    log.record("a")
    keys.rotate(tmp_path / "keys.json")
    log.record("b")
    log.close()
    reloaded = AuditKeys.load_or_create(tmp_path / "keys.json")
    assert [r["kid"] for r in log.read()] == ["a1", "a2"]
    assert verify(tmp_path / "audit.log", reloaded).ok


def test_fifty_concurrent_writers_keep_one_chain(tmp_path: Path, keys: AuditKeys) -> None:
    log = AuditLog(tmp_path / "audit.log", keys)
    threads = [
        threading.Thread(target=lambda i=i: [log.record("w", writer=i, n=n) for n in range(10)])
        for i in range(50)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    seqs = [r["seq"] for r in log.read()]
    assert seqs == list(range(1, 501))
    assert verify(tmp_path / "audit.log", keys).ok


def _writer(path: str, keys_path: str, n: int) -> None:
    log = AuditLog(Path(path), AuditKeys.load_or_create(Path(keys_path)))
    for i in range(n):
        log.record("proc", n=i)
    log.close()


def test_two_processes_extend_one_chain(tmp_path: Path, keys: AuditKeys) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_writer, args=(str(tmp_path / "audit.log"), str(tmp_path / "keys.json"), 100)
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert verify(tmp_path / "audit.log", keys).ok
    assert [r["seq"] for r in AuditLog(tmp_path / "audit.log", keys).read()] == list(range(1, 201))


def test_rotated_files_continue_the_chain(tmp_path: Path, keys: AuditKeys) -> None:
    log = AuditLog(tmp_path / "audit.log", keys, max_bytes=2000)
    for i in range(40):
        log.record("run_start", exec_id=f"e{i}")
    log.close()
    assert len(list(tmp_path.glob("audit.log.0*"))) >= 2
    v = verify(tmp_path / "audit.log", keys)
    assert v.ok and v.records == 40


def test_a_full_disk_is_an_audit_error_not_a_silent_loss(
    tmp_path: Path, keys: AuditKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    log = AuditLog(tmp_path / "audit.log", keys)

    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(AuditError):
        log.record("run_start", exec_id="e1")
    monkeypatch.undo()
    log.close()
    assert all(r["event"] != "run_start" for r in log.read())


def test_a_huge_field_is_bounded_and_the_trail_reopens(tmp_path: Path, keys: AuditKeys) -> None:
    log = AuditLog(tmp_path / "audit.log", keys)
    log.record("session_open", owner="mallory", tools=["x" * 2_000_000], note="y" * 3_000_000)
    log.record("deep", value=json.loads("[" * 500 + "]" * 500))
    log.close()
    assert (tmp_path / "audit.log").stat().st_size < 64 * 1024
    again = AuditLog(tmp_path / "audit.log", keys)  # the last record is readable: it reopens
    again.record("after")
    rec = again.read()[0]
    assert rec["owner"] == "mallory" and len(rec["note"]) < 1100 and len(rec["tools"][0]) < 1100
    again.close()
    assert verify(tmp_path / "audit.log", keys).ok


def test_an_unreadable_last_record_is_stepped_over_and_noted(
    tmp_path: Path, keys: AuditKeys
) -> None:
    path = trail(tmp_path, keys, n=3)
    with path.open("ab") as fh:
        fh.write(b'{"seq": 4, "this is": not json}\n')
    log = AuditLog(path, keys)
    log.record("after")
    records = log.read()
    log.close()
    assert [r["event"] for r in records][-2:] == ["recovered", "after"]
    assert records[-2]["unreadable_records"] == 1
    assert records[-2]["seq"] == 4  # the chain goes on from the last readable record
    v = verify(path, keys)
    assert not v.ok and any(":4: not a valid record" in p for p in v.problems)


def test_unfinished_runs_skip_unreadable_records(tmp_path: Path, keys: AuditKeys) -> None:
    log = AuditLog(tmp_path / "audit.log", keys)
    log.record("run_start", controller="c", exec_id="e1")
    log.close()
    with (tmp_path / "audit.log").open("ab") as fh:
        fh.write(b"garbage\n")
    log = AuditLog(tmp_path / "audit.log", keys)
    assert [r["exec_id"] for r in log.unfinished_runs("c")] == ["e1"]
    log.close()
