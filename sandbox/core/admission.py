"""Admission: the one front door every surface (REST, SSE, MCP over HTTP and stdio, CLI) uses.

A surface turns its credential into a `Principal` with `authenticate` (API key) or `local`
(an owner fixed by the operator, as `sandbox mcp --owner` does), calls `admit` once per
request, and lets the core do the rest: the profile a session may use (`profile_for`), the
per-owner and global session caps (`sessions`), and run slots per key and in total with a
bounded queue (`run_slot` / `wait_slot`). Every refusal is an exception from
`sandbox.exceptions` with its own code, and an audit record; a surface only translates it.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from sandbox.audit import AuditLog
from sandbox.audit_queue import AuditQueue
from sandbox.exceptions import (
    AuthenticationError,
    ProfileNotAllowedError,
    QueueFullError,
    RateLimitedError,
)
from sandbox.keys import KeyStore
from sandbox.ratelimit import TokenBucket
from sandbox.settings import ApiSettings

LOCAL_PREFIX = "local:"


@dataclass(frozen=True)
class Principal:
    """Who is asking: an owner, and the key (or local surface) that speaks for them."""

    owner: str
    key_id: str
    profiles: tuple[str, ...] | None = None
    """Profiles this principal may open sessions with; None: any."""


@dataclass(eq=False)
class Slot:
    """A held run slot; `release()` is idempotent."""

    key_id: str
    _release: Callable[[str], None] = field(repr=False)
    _held: bool = True

    @property
    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        if self._held:
            self._held = False
            self._release(self.key_id)


class RunSlots:
    """Concurrent runs per key and in total; waiters queue FIFO up to a bound.

    Waiting costs no thread: a request is a Future granted when a slot frees up, so an async
    surface awaits it and a sync caller blocks on it. A waiter whose key is at its own cap does
    not hold up waiters of other keys.
    """

    def __init__(
        self,
        per_key: int,
        total: int,
        queue: int,
        queue_per_key: int | None = None,
    ) -> None:
        self._per_key, self._total, self._queue = per_key, total, queue
        # One key's waiters may not fill the queue every key shares.
        self._queue_per_key = queue if queue_per_key is None else queue_per_key
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}
        self._running = 0
        self._waiters: deque[tuple[str, Future[Slot]]] = deque()

    def request(self, key_id: str) -> Future[Slot]:
        """A future that resolves to a held Slot.

        Raises:
            QueueFullError: no slot is free and the queue is full.
        """
        fut: Future[Slot] = Future()
        with self._lock:
            self._waiters = deque(w for w in self._waiters if not w[1].cancelled())
            ahead = any(k == key_id for k, _ in self._waiters)
            if not ahead and self._may_start(key_id):
                fut.set_running_or_notify_cancel()
                self._take(key_id)
                fut.set_result(Slot(key_id, self._release))
                return fut
            waiting = sum(k == key_id for k, _ in self._waiters)
            if len(self._waiters) >= self._queue or waiting >= self._queue_per_key:
                raise QueueFullError("too many runs waiting; try again later", retry_after=1.0)
            self._waiters.append((key_id, fut))
        return fut

    def in_use(self, key_id: str | None = None) -> int:
        with self._lock:
            return self._running if key_id is None else self._active.get(key_id, 0)

    def _may_start(self, key_id: str) -> bool:
        return self._running < self._total and self._active.get(key_id, 0) < self._per_key

    def _take(self, key_id: str) -> None:
        self._running += 1
        self._active[key_id] = self._active.get(key_id, 0) + 1

    def _release(self, key_id: str) -> None:
        with self._lock:
            self._running -= 1
            left = self._active[key_id] - 1
            if left:
                self._active[key_id] = left
            else:
                del self._active[key_id]
        self._grant()

    def _grant(self) -> None:
        """Hand free slots to waiters, in order, as far as the caps allow."""
        granted: list[tuple[Future[Slot], Slot]] = []
        with self._lock:
            keep: deque[tuple[str, Future[Slot]]] = deque()
            for key, fut in self._waiters:
                if self._may_start(key) and fut.set_running_or_notify_cancel():
                    self._take(key)
                    granted.append((fut, Slot(key, self._release)))
                elif not fut.cancelled():
                    keep.append((key, fut))
            self._waiters = keep
        for fut, slot in granted:  # outside the lock: callbacks may run here
            fut.set_result(slot)


class Admission:
    """The rules of the front door, from the deployment's settings."""

    def __init__(
        self,
        rules: ApiSettings,
        audit: AuditLog,
        controller_id: str,
        keys: KeyStore | None = None,
    ) -> None:
        self.rules = rules
        self.keys = keys
        # Refusals are counted here and written aggregated by another thread: a flood of bad
        # requests costs the refusing thread no I/O and the trail one record per interval.
        self._refusals = AuditQueue(audit)
        self._controller = controller_id
        self._buckets: dict[str, TokenBucket] = {}
        self._buckets_lock = threading.Lock()
        self.slots = RunSlots(
            rules.runs_per_key,
            rules.runs_total,
            rules.run_queue,
            rules.run_queue_per_key,
        )

    # -- who ----------------------------------------------------------------------------

    def authenticate(
        self, credential: str | None, *, surface: str, client: str | None = None, path: str = ""
    ) -> Principal:
        """The principal an API key names, admitted for one request.

        Raises:
            AuthenticationError: no key, or not a live one (audited as auth_failure).
            RateLimitedError: the key is over its request rate (audited as rate_limited).
        """
        key = self.keys.verify(credential) if self.keys is not None and credential else None
        if key is None:
            # Aggregated on fixed fields only: a caller choosing paths cannot make every
            # failure a record of its own.
            self._refusals.count(
                "auth_failure",
                {"controller": self._controller, "surface": surface},
                {"path": path[:200], "client": (client or "")[:64]},
            )
            raise AuthenticationError(
                "the API key was not accepted (unknown, revoked or mistyped)"
                if credential
                else "no API key: send the header 'Authorization: Bearer <key>'"
            )
        principal = Principal(
            key.owner, key.id, tuple(key.profiles) if key.profiles is not None else None
        )
        self.admit(principal, surface=surface)
        return principal

    @staticmethod
    def local(owner: str, profiles: tuple[str, ...] | None = None) -> Principal:
        """A principal for a surface whose owner the operator fixed (stdio MCP, CLI, embedded)."""
        return Principal(owner, LOCAL_PREFIX + owner, profiles)

    # -- per request ----------------------------------------------------------------------

    def admit(self, principal: Principal, *, surface: str) -> None:
        """Count one request against the principal's rate.

        Raises:
            RateLimitedError: over the rate (audited as rate_limited).
        """
        with self._buckets_lock:
            bucket = self._buckets.get(principal.key_id)
            if bucket is None:
                bucket = TokenBucket(self.rules.rate_per_s, self.rules.rate_burst)
                self._buckets[principal.key_id] = bucket
        if not bucket.take():
            self._record(
                "rate_limited", surface=surface, owner=principal.owner, key_id=principal.key_id
            )
            raise RateLimitedError(
                "too many requests for this key",
                retry_after=float(max(1, round(bucket.retry_after() + 0.5))),
            )

    def profile_for(self, principal: Principal, requested: str | None, *, surface: str) -> str:
        """The profile a new session gets: the one asked for if the principal may use it;
        with none asked for, 'default' if allowed, else the principal's first profile.

        Raises:
            ProfileNotAllowedError: the principal may not use that profile (audited).
        """
        allowed = principal.profiles
        if requested is None:
            if allowed is None or "default" in allowed:
                return "default"
            if allowed:
                return allowed[0]
            requested = "default"
        if allowed is not None and requested not in allowed:
            self._refused(principal, surface, "profile_not_allowed", profile=requested[:64])
            raise ProfileNotAllowedError(f"no profile {requested!r:.40} available")
        return requested

    # -- run slots ------------------------------------------------------------------------

    def request_slot(self, principal: Principal, *, surface: str) -> Future[Slot]:
        """A run slot for this principal, granted now or when one frees up.

        Raises:
            QueueFullError: no slot free and the wait queue is full (audited).
        """
        try:
            return self.slots.request(principal.key_id)
        except QueueFullError:
            self._refused(principal, surface, "queue_full")
            raise

    def acquire(self, principal: Principal, *, surface: str, timeout: float) -> Slot:
        """A held run slot, waiting at most `timeout` seconds for it (this thread blocks).

        Raises:
            QueueFullError: the queue is full, or no slot came free in time.
        """
        fut = self.request_slot(principal, surface=surface)
        try:
            return fut.result(timeout)
        except (FutureTimeout, CancelledError):
            raise self.gave_up(fut, principal, surface) from None

    def gave_up(self, fut: Future[Slot], principal: Principal, surface: str) -> QueueFullError:
        """A slot wait that ran out: the request is abandoned and the refusal recorded; the
        error to raise is returned."""
        abandon(fut)
        self._refused(principal, surface, "queue_timeout")
        return QueueFullError("no run slot came free in time", retry_after=1.0)

    @contextlib.contextmanager
    def run_slot(self, principal: Principal, *, surface: str, timeout: float) -> Iterator[Slot]:
        """Hold a run slot for the block (see `acquire`)."""
        slot = self.acquire(principal, surface=surface, timeout=timeout)
        try:
            yield slot
        finally:
            slot.release()

    def refused(self, principal: Principal, surface: str, reason: str, **fields: str) -> None:
        """Record a refusal the core decided elsewhere (e.g. a session cap)."""
        self._refused(principal, surface, reason, **fields)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every refusal counted so far is on the audit trail."""
        self._refusals.flush(timeout)

    def close(self) -> None:
        self._refusals.close()

    def _refused(self, principal: Principal, surface: str, reason: str, **fields: str) -> None:
        self._record(
            "admission_refused",
            surface=surface,
            owner=principal.owner,
            key_id=principal.key_id,
            reason=reason,
            **fields,
        )

    def _record(self, event: str, **fields: str | None) -> None:
        self._refusals.count(event, {"controller": self._controller, **fields})


def abandon(fut: Future[Slot]) -> None:
    """Give up a slot request: cancel it, or release the slot if it was granted meanwhile."""
    if not fut.cancel():
        fut.add_done_callback(lambda f: None if f.cancelled() else f.result().release())
