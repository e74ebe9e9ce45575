"""Tamper-evident audit trail: one JSON line per security-relevant event, hash-chained and keyed.

Each record carries `seq` (1, 2, 3...), `kid` (the key epoch), `prev` (the previous record's
MAC) and `mac` = HMAC-SHA256(key[kid], canonical JSON of the record without `mac`). Appends
are fsync'd, under an exclusive `flock` so several processes (the controller, `sandbox keys`)
extend one chain; a writer that finds the file grown re-reads the tail first. A signed
checkpoint (`<log>.head`) is rewritten every 100 records and on close, so cutting records off
the end is detected too. Files rotate by size (`audit.log.000001`, ...); the chain runs on.

A torn last line (the process died mid-write) is never silently dropped or accepted: the
verifier reports it, and the next writer cuts it off and appends a `recovered` event that
records its length and hash.

Records never hold secrets or raw values: tokens appear as `sha256[:8]`, tool calls without
their arguments, and no run output is recorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.exceptions import AuditUnavailableError

CHECKPOINT_EVERY = 100


class AuditError(AuditUnavailableError):
    """An audit record could not be written; the action it records must not go ahead."""


@dataclass
class AuditKeys:
    """MAC keys by key id; `current` signs new records. Keep them apart from the log in production."""

    keys: dict[str, bytes]
    current: str

    @classmethod
    def load_or_create(cls, path: Path) -> AuditKeys:
        if path.exists():
            data = json.loads(path.read_text())
            return cls({k: bytes.fromhex(v) for k, v in data["keys"].items()}, data["current"])
        keys = cls({"a1": secrets.token_bytes(32)}, "a1")
        keys.save(path)
        return keys

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(
                {"current": self.current, "keys": {k: v.hex() for k, v in self.keys.items()}}, fh
            )
        os.replace(tmp, path)

    def rotate(self, path: Path) -> str:
        """Start a new key epoch; older records stay verifiable with their own key."""
        kid = f"a{len(self.keys) + 1}"
        self.keys[kid] = secrets.token_bytes(32)
        self.current = kid
        self.save(path)
        return kid


def _mac(keys: AuditKeys, kid: str, record: dict[str, Any]) -> str:
    body = json.dumps(
        {k: v for k, v in record.items() if k != "mac"}, sort_keys=True, separators=(",", ":")
    )
    return hmac.new(keys.keys[kid], body.encode(), hashlib.sha256).hexdigest()


def _files(path: Path) -> list[Path]:
    rotated = sorted(p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit())
    return [*rotated, *([path] if path.exists() else [])]


_TAIL_WINDOW = 1 << 20
_MAX_STRING = 1024
_MAX_ITEMS = 64
_MAX_KEY = 64
_MAX_DEPTH = 4


def _bounded(value: Any, depth: int) -> Any:
    """`value` with strings, lists, mappings and nesting cut to fixed bounds."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if len(value) <= _MAX_STRING:
            return value
        return value[:_MAX_STRING] + f"...[{len(value) - _MAX_STRING} more]"
    if depth >= _MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, dict):
        items = list(value.items())
        out = {str(k)[:_MAX_KEY]: _bounded(v, depth + 1) for k, v in items[:_MAX_ITEMS]}
        if len(items) > _MAX_ITEMS:
            out["..."] = f"{len(items) - _MAX_ITEMS} more"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        kept = [_bounded(v, depth + 1) for v in seq[:_MAX_ITEMS]]
        if len(seq) > _MAX_ITEMS:
            kept.append(f"...[{len(seq) - _MAX_ITEMS} more]")
        return kept
    return _bounded(str(value), depth)


def _parse(line: bytes) -> dict[str, Any] | None:
    """A record, or None for a line that is not one (corrupt, torn, edited)."""
    try:
        rec = json.loads(line)
        int(rec["seq"])
        str(rec["mac"])
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return rec if isinstance(rec, dict) else None


class AuditLog:
    def __init__(self, path: Path, keys: AuditKeys, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path, self._keys, self._max_bytes = path, keys, max_bytes
        self._lock = threading.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._seq, self._last_mac, self._size = 0, "", -1
        self._since_checkpoint = 0
        with self._locked():
            pass  # loads the tail, and recovers a torn one

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(self._fd).st_size
                if size != self._size:
                    self._sync_tail(size)
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _sync_tail(self, size: int) -> None:
        """Read where the chain stands (another writer may have appended); cut a torn line,
        and step over a last record that does not parse (both noted in a `recovered` event)."""
        start = max(0, size - _TAIL_WINDOW)
        tail = os.pread(self._fd, size - start, start)
        torn = b""
        if tail and not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n") + 1
            torn = tail[cut:]
            tail = tail[:cut]
            os.ftruncate(self._fd, size - len(torn))
        lines = tail.splitlines()
        if start > 0 and lines:
            lines = lines[1:]  # the window began inside a line
        bad = 0
        for line in reversed(lines):
            last = _parse(line)
            if last is not None:
                self._seq, self._last_mac = int(last["seq"]), str(last["mac"])
                break
            bad += 1
        else:
            if size == 0 or not lines:
                self._seq, self._last_mac = self._chain_from_rotated()
        self._size = os.fstat(self._fd).st_size
        if torn or bad:
            details: dict[str, Any] = {}
            if torn:
                details.update(torn_bytes=len(torn), torn_sha256=hashlib.sha256(torn).hexdigest())
            if bad:
                details["unreadable_records"] = bad
            self._append("recovered", details)

    def _chain_from_rotated(self) -> tuple[int, str]:
        for older in reversed(_files(self.path)[:-1] if self.path.exists() else _files(self.path)):
            for line in reversed(older.read_bytes().splitlines()):
                last = _parse(line)
                if last is not None:
                    return int(last["seq"]), str(last["mac"])
        return 0, ""

    def record(self, event: str, **fields: Any) -> None:
        """Append one event, durably.

        Raises:
            AuditError: it could not be written (disk full, ...): do not do what it records.
        """
        try:
            with self._locked():
                self._append(event, fields)
        except OSError as exc:
            raise AuditError(f"audit trail unavailable: {exc.strerror or exc}") from exc

    def _append(self, event: str, fields: dict[str, Any]) -> None:
        kid = self._keys.current
        # Whatever a caller (or an attacker through a caller) puts in a record is bounded, so
        # no record can grow the trail, or a reader's buffer, without limit.
        bounded = {str(k)[:_MAX_KEY]: _bounded(v, 0) for k, v in list(fields.items())[:_MAX_ITEMS]}
        rec: dict[str, Any] = {
            **bounded,  # first: a caller's field can never replace the chain's own
            "seq": self._seq + 1,
            "ts": round(time.time(), 6),
            "event": str(event)[:_MAX_KEY],
            "kid": kid,
            "prev": self._last_mac,
        }
        rec["mac"] = _mac(self._keys, kid, rec)
        line = (json.dumps(rec, sort_keys=True, default=str, separators=(",", ":")) + "\n").encode()
        before = self._size
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)
        except OSError:
            # All or nothing: a record cut short by a full disk must not stay in the chain.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)
            raise
        self._seq, self._last_mac = rec["seq"], rec["mac"]
        self._size = os.fstat(self._fd).st_size
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY:
            self._checkpoint()
        if self._size >= self._max_bytes:
            self._rotate()
        for listener in self._listeners:
            listener(rec)

    def _checkpoint(self) -> None:
        head = {"seq": self._seq, "mac": self._last_mac, "kid": self._keys.current}
        head["hmac"] = _mac(self._keys, self._keys.current, head)
        tmp = self.path.with_name(self.path.name + ".head.tmp")
        tmp.write_text(json.dumps(head))
        os.replace(tmp, self.path.with_name(self.path.name + ".head"))
        self._since_checkpoint = 0

    def _rotate(self) -> None:
        rotated = _files(self.path)[:-1]
        n = int(rotated[-1].suffix[1:]) + 1 if rotated else 1
        os.rename(self.path, self.path.with_name(f"{self.path.name}.{n:06d}"))
        new_fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.close(self._fd)
        self._fd, self._size = new_fd, 0

    def unfinished_runs(self, controller: str) -> list[dict[str, Any]]:
        """run_start records of `controller` in the current file with no run_end after them."""
        open_runs: dict[str, dict[str, Any]] = {}
        with self._locked():
            data = os.pread(self._fd, self._size, 0) if self._size > 0 else b""
        for line in data.splitlines():
            rec = _parse(line)
            if rec is None:
                continue  # an unreadable record; the verifier names it
            if rec.get("event") == "run_start" and rec.get("controller") == controller:
                open_runs[rec["exec_id"]] = rec
            elif rec.get("event") == "run_end":
                open_runs.pop(rec.get("exec_id", ""), None)
        return list(open_runs.values())

    def read(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first (unreadable ones are skipped: `verify` names them)."""
        records = (_parse(line) for p in _files(self.path) for line in p.read_bytes().splitlines())
        return [r for r in records if r is not None]

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._fd, fcntl.LOCK_EX)
                    self._checkpoint()
                os.close(self._fd)
                self._fd = -1


@dataclass
class Verdict:
    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)


def verify(path: Path, keys: AuditKeys) -> Verdict:
    """Check a trail (with its rotated files and checkpoint); every problem names where it is."""
    problems: list[str] = []
    expected_seq, prev = 1, ""
    count = 0
    macs: dict[int, str] = {}
    for file in _files(path):
        *complete, torn = file.read_bytes().split(b"\n")
        for lineno, line in enumerate(complete, 1):
            where = f"{file.name}:{lineno}"
            try:
                rec = json.loads(line)
                seq, kid, mac = int(rec["seq"]), str(rec["kid"]), str(rec["mac"])
            except (ValueError, KeyError, TypeError):
                problems.append(f"{where}: not a valid record (edited or corrupt)")
                continue
            count += 1
            if seq != expected_seq:
                problems.append(
                    f"{where}: seq {seq} where {expected_seq} was expected (deleted or reordered)"
                )
            if rec.get("prev") != prev:
                problems.append(f"{where} (seq {seq}): does not chain to the record before it")
            if kid not in keys.keys:
                problems.append(f"{where} (seq {seq}): unknown key id {kid!r}")
            elif not hmac.compare_digest(_mac(keys, kid, rec), mac):
                problems.append(f"{where} (seq {seq}): MAC mismatch (edited or forged)")
            macs[seq] = mac
            expected_seq, prev = seq + 1, mac
        if torn:
            problems.append(
                f"{file.name}: torn last record after seq {expected_seq - 1} (written partly)"
            )
    head_path = path.with_name(path.name + ".head")
    if head_path.exists():
        try:
            head = json.loads(head_path.read_text())
            ok_head = head["kid"] in keys.keys and hmac.compare_digest(
                _mac(keys, head["kid"], {k: v for k, v in head.items() if k != "hmac"}),
                head["hmac"],
            )
        except (ValueError, KeyError, TypeError):
            ok_head = False
        if not ok_head:
            problems.append(f"{head_path.name}: checkpoint is not authentic")
        elif macs.get(int(head["seq"])) != head["mac"]:
            last = expected_seq - 1
            problems.append(
                f"checkpoint says seq {head['seq']} but the trail "
                + (
                    f"ends at seq {last} (truncated)"
                    if last < int(head["seq"])
                    else "differs there"
                )
            )
    return Verdict(not problems, count, problems)
