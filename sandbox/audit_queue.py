"""Audit records written off the caller's thread: refusals aggregated, other records queued.

A refused request (a bad key, a rate limit, a full queue, a bad tool call) must be on the audit
trail, but a flood of them must cost the refusing thread nothing and the trail one record per
kind and interval, not one fsync per attack packet. `count` only counts; a writer thread turns
each interval's counts into records with a `count` field. `put` queues one record as it is (a
tool call's), so the event loop that serves every tenant's tool calls never waits on a disk;
past `max_queued` waiting records, further ones are counted instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable, Mapping

from sandbox.audit import AuditError, AuditLog

logger = logging.getLogger(__name__)

_Key = tuple[str, tuple[tuple[str, Hashable], ...]]


class AuditQueue:
    """Counts refusals and writes them every `window_s` seconds, at most `max_kinds` distinct
    records per window (the rest are counted in one `overflow` record per event)."""

    def __init__(
        self,
        audit: AuditLog,
        controller: str | None = None,
        window_s: float = 1.0,
        max_kinds: int = 1000,
        max_queued: int = 10_000,
    ) -> None:
        self._audit, self._controller = audit, controller
        self._window_s, self._max_kinds, self._max_queued = window_s, max_kinds, max_queued
        self._lock = threading.Condition()
        self._pending: dict[_Key, int] = {}
        self._samples: dict[_Key, dict[str, str | int | None]] = {}
        self._queued: list[tuple[str, dict[str, object]]] = []
        self._writing = False
        self._hurry = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="sbx-audit-queue", daemon=True)
        self._thread.start()

    def count(
        self,
        event: str,
        fields: Mapping[str, str | int | None],
        sample: Mapping[str, str | int | None] | None = None,
    ) -> None:
        """Count one occurrence (written aggregated, with a `count`); never blocks on I/O.

        Records aggregate on `fields`, which must take few values (reasons, surfaces, ids
        the controller chose); what a caller chose (a path, a target) goes in `sample`, and
        the record keeps the first one of its window."""
        key: _Key = (event, tuple(sorted(fields.items())))
        with self._lock:
            key = self._count(key)
            if sample and key not in self._samples:
                self._samples[key] = dict(sample)
            self._lock.notify()

    def put(self, event: str, **fields: object) -> None:
        """Queue one record as it is; never blocks on I/O."""
        with self._lock:
            if len(self._queued) >= self._max_queued:
                self._count((event, (("overflow", True),)))
            else:
                self._queued.append((event, fields))
            self._lock.notify()

    def _count(self, key: _Key) -> _Key:
        if key not in self._pending and len(self._pending) >= self._max_kinds:
            key = (key[0], (("overflow", True),))
        self._pending[key] = self._pending.get(key, 0) + 1
        return key

    def flush(self, timeout: float = 5.0) -> None:
        """Write what is counted now and wait until it is on the trail (tests, shutdown)."""
        end = time.monotonic() + timeout
        with self._lock:
            self._hurry = True
            self._lock.notify_all()
            while (self._pending or self._queued or self._writing) and self._thread.is_alive():
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
                while not (self._pending or self._queued) and not self._closed:
                    self._lock.wait()
                if self._closed and not (self._pending or self._queued):
                    return
                batch, self._pending = self._pending, {}
                samples, self._samples = self._samples, {}
                queued, self._queued = self._queued, []
                self._writing = True
            self._write(queued, batch, samples)
            with self._lock:
                self._writing = False
                self._lock.notify_all()
                # One batch per window, so a flood only raises counts; a flush cuts it short.
                end = time.monotonic() + self._window_s
                while not (self._hurry or self._closed) and time.monotonic() < end:
                    self._lock.wait(max(0.0, end - time.monotonic()))
                self._hurry = False

    def _write(
        self,
        queued: list[tuple[str, dict[str, object]]],
        batch: dict[_Key, int],
        samples: dict[_Key, dict[str, str | int | None]],
    ) -> None:
        ctl = {"controller": self._controller} if self._controller is not None else {}
        try:
            for event, fields in queued:
                self._audit.record(event, **{**fields, **ctl})
            for key, count in batch.items():
                event, key_fields = key
                record = {**samples.get(key, {}), **dict(key_fields), **ctl, "count": count}
                self._audit.record(event, **record)
        except AuditError:
            # The trail is failing. These record what was already refused or done; what must
            # not happen unrecorded (a run) writes its own record, in line, and fails closed.
            logger.error("audit trail unavailable; %d records lost", len(queued) + len(batch))
        except Exception:  # the writer thread's top: it must outlive a bad record
            logger.exception("audit queue: a batch could not be written")
