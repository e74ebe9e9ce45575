"""At most one execution per Idempotency-Key: a retried POST gets the first attempt's result.

Memory has a ceiling: an attempt's result is kept in memory only while it runs; once done it is
written to a file under the store's folder and only its digest, time and size stay in memory.
The files have a byte budget: past it the oldest results are dropped, and a retry of one of
those gets 410 `idempotency_result_gone` (never a second execution).

An attempt outlives the request that started it, so a client that lost its connection (or
timed out) and retries gets the same run. One that does not come back within `grace_s` has
given up: the attempt's `on_abandoned` is called then (a run's cancel).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from sandbox.exceptions import (
    IdempotencyConflictError,
    IdempotencyGoneError,
    InvalidInputError,
    RateLimitedError,
)

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    digest: str
    at: float
    running: asyncio.Future[T] | None
    file: Path | None = None
    size: int = 0
    on_abandoned: Callable[[], None] | None = None
    waiters: int = 0
    timer: asyncio.TimerHandle | None = None


class IdempotencyStore(Generic[T]):
    """Attempts by (owner, scope, key), kept `ttl_s` seconds, at most `max_entries` at once
    and `max_bytes` of stored results."""

    def __init__(
        self,
        folder: Path,
        dump: Callable[[T], bytes],
        load: Callable[[bytes], T],
        ttl_s: float = 600.0,
        max_entries: int = 10_000,
        max_bytes: int = 256 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        grace_s: float = 2.0,
    ) -> None:
        self._folder, self._dump, self._load, self._clock = folder, dump, load, clock
        self._grace_s = grace_s
        self._ttl_s, self._max, self._max_bytes = ttl_s, max_entries, max_bytes
        self._entries: dict[tuple[str, str, str], _Entry[T]] = {}
        self._stored = 0
        # One folder per process under `folder`; what an earlier process left has no index any
        # more, and is removed once past the TTL.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for old in folder.iterdir():
            with contextlib.suppress(OSError):
                if time.time() - old.stat().st_mtime > ttl_s:
                    shutil.rmtree(old, ignore_errors=True)
        self._folder = Path(tempfile.mkdtemp(dir=folder))

    async def once(
        self,
        owner: str,
        scope: str,
        key: str,
        request_body: bytes,
        attempt: Callable[[], Awaitable[T]],
        on_abandoned: Callable[[], None] | None = None,
    ) -> T:
        """Run `attempt` once for this key; a repeat with the same body gets the same result.
        `on_abandoned` is called if, while it runs, nobody waits for it for `grace_s`.

        Raises:
            InvalidInputError: a malformed key.
            IdempotencyConflictError: the key was used with another request body.
            IdempotencyGoneError: the key's result was dropped to keep within the budget.
            RateLimitedError: too many keys held.
        """
        if not 1 <= len(key) <= 64 or not key.isprintable():
            raise InvalidInputError("Idempotency-Key must be 1-64 printable characters")
        digest = hashlib.sha256(request_body).hexdigest()
        self._expire(self._clock())
        ident = (owner, scope, key)
        entry = self._entries.get(ident)
        if entry is not None:
            if entry.digest != digest:
                raise IdempotencyConflictError("this Idempotency-Key was used with another request")
            return await self._replay(entry)
        if len(self._entries) >= self._max:
            raise RateLimitedError("too many idempotent requests held", retry_after=1.0)
        running: asyncio.Future[T] = asyncio.ensure_future(attempt())
        entry = _Entry(digest, self._clock(), running, on_abandoned=on_abandoned)
        self._entries[ident] = entry
        # Settled when the attempt ends, whoever (if anyone) still waits for it: a client that
        # hung up leaves neither a result in memory nor an entry that never expires.
        running.add_done_callback(lambda _: self._settle(ident, entry))
        return await self._wait(entry, running)

    async def _wait(self, entry: _Entry[T], running: asyncio.Future[T]) -> T:
        """Await the attempt; the last waiter to leave early starts the abandonment clock."""
        entry.waiters += 1
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None
        try:
            return await asyncio.shield(running)
        finally:
            entry.waiters -= 1
            if not entry.waiters and not running.done() and entry.on_abandoned is not None:
                loop = asyncio.get_running_loop()
                entry.timer = loop.call_later(self._grace_s, self._abandoned, entry, running)

    @staticmethod
    def _abandoned(entry: _Entry[T], running: asyncio.Future[T]) -> None:
        entry.timer = None
        if not entry.waiters and not running.done() and entry.on_abandoned is not None:
            entry.on_abandoned()

    def _settle(self, ident: tuple[str, str, str], entry: _Entry[T]) -> None:
        running = entry.running
        if running is None or self._entries.get(ident) is not entry:
            return
        if running.cancelled() or running.exception() is not None:
            del self._entries[ident]  # a failed attempt may be retried
            return
        self._store(ident, entry)

    async def _replay(self, entry: _Entry[T]) -> T:
        if entry.running is not None:
            return await self._wait(entry, entry.running)
        if entry.file is None:
            raise IdempotencyGoneError("the result for this Idempotency-Key is no longer held")
        return self._load(await asyncio.to_thread(entry.file.read_bytes))

    def _store(self, ident: tuple[str, str, str], entry: _Entry[T]) -> None:
        """Move a finished result from memory to its file (once, whoever awaited it)."""
        running = entry.running
        if running is None:
            return
        data = self._dump(running.result())
        name = hashlib.sha256(repr(ident).encode()).hexdigest()
        path = self._folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        entry.file, entry.size, entry.running = path, len(data), None
        self._stored += len(data)
        self._shed()

    def _shed(self) -> None:
        """Drop the oldest stored results until within the byte budget (tombstones stay)."""
        if self._stored <= self._max_bytes:
            return
        for entry in sorted(self._entries.values(), key=lambda e: e.at):
            if self._stored <= self._max_bytes:
                return
            self._drop_file(entry)

    def _drop_file(self, entry: _Entry[T]) -> None:
        if entry.file is not None:
            with contextlib.suppress(FileNotFoundError):
                entry.file.unlink()
            self._stored -= entry.size
            entry.file, entry.size = None, 0

    def _expire(self, now: float) -> None:
        for ident in [i for i, e in self._entries.items() if now - e.at > self._ttl_s]:
            entry = self._entries[ident]
            if entry.running is None:
                self._drop_file(entry)
                del self._entries[ident]

    @property
    def stored_bytes(self) -> int:
        return self._stored

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)
