"""Refusal records, written off the caller's thread and aggregated.

A refused request (a bad key, a rate limit, a full queue) must be on the audit trail, but a
flood of them must cost the refusing thread nothing and the trail one record per kind and
interval, not one fsync per attack packet. `RefusalLog.add` only counts; a writer thread turns
each interval's counts into records with a `count` field.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

from sandbox.audit import AuditError, AuditLog

_Key = tuple[str, tuple[tuple[str, Hashable], ...]]


class RefusalLog:
    """Counts refusals and writes them every `window_s` seconds, at most `max_kinds` distinct
    records per window (the rest are counted in one `overflow` record per event)."""

    def __init__(
        self, audit: AuditLog, controller: str, window_s: float = 1.0, max_kinds: int = 1000
    ) -> None:
        self._audit, self._controller = audit, controller
        self._window_s, self._max_kinds = window_s, max_kinds
        self._lock = threading.Condition()
        self._pending: dict[_Key, int] = {}
        self._writing = False
        self._hurry = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="sbx-refusals", daemon=True)
        self._thread.start()

    def add(self, event: str, **fields: str | int | float | None) -> None:
        """Count one refusal; never blocks on I/O."""
        key: _Key = (event, tuple(sorted(fields.items())))
        with self._lock:
            if key not in self._pending and len(self._pending) >= self._max_kinds:
                key = (event, (("overflow", True),))
            self._pending[key] = self._pending.get(key, 0) + 1
            self._lock.notify()

    def flush(self, timeout: float = 5.0) -> None:
        """Write what is counted now and wait until it is on the trail (tests, shutdown)."""
        end = time.monotonic() + timeout
        with self._lock:
            self._hurry = True
            self._lock.notify_all()
            while (self._pending or self._writing) and self._thread.is_alive():
                if not self._lock.wait(max(0.0, end - time.monotonic())):
                    break

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._lock.wait()
                if self._closed and not self._pending:
                    return
                batch, self._pending = self._pending, {}
                self._writing = True
            self._write(batch)
            with self._lock:
                self._writing = False
                self._lock.notify_all()
                # One batch per window, so a flood only raises counts; a flush cuts it short.
                end = time.monotonic() + self._window_s
                while not (self._hurry or self._closed) and time.monotonic() < end:
                    self._lock.wait(max(0.0, end - time.monotonic()))
                self._hurry = False

    def _write(self, batch: dict[_Key, int]) -> None:
        for (event, fields), count in batch.items():
            try:
                self._audit.record(event, controller=self._controller, count=count, **dict(fields))
            except AuditError:
                return  # the trail is failing; the refused requests were refused anyway
