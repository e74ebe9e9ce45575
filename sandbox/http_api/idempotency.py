"""At most one execution per Idempotency-Key: a retried POST gets the first attempt's result."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sandbox.exceptions import IdempotencyConflictError, InvalidInputError, RateLimitedError

T = TypeVar("T")


class IdempotencyStore(Generic[T]):
    """Attempts by (owner, scope, key), kept `ttl_s` seconds, at most `max_entries` at once."""

    def __init__(self, ttl_s: float = 600.0, max_entries: int = 10_000) -> None:
        self._ttl_s, self._max = ttl_s, max_entries
        self._entries: dict[tuple[str, str, str], tuple[str, float, asyncio.Future[T]]] = {}

    async def once(
        self,
        owner: str,
        scope: str,
        key: str,
        request_body: bytes,
        attempt: Callable[[], Awaitable[T]],
    ) -> T:
        """Run `attempt` once for this key; a repeat with the same body gets the same result.

        Raises:
            InvalidInputError: a malformed key.
            IdempotencyConflictError: the key was used with another request body.
            RateLimitedError: too many keys in flight.
        """
        if not 1 <= len(key) <= 64 or not key.isprintable():
            raise InvalidInputError("Idempotency-Key must be 1-64 printable characters")
        digest = hashlib.sha256(request_body).hexdigest()
        now = time.monotonic()
        for k in [k for k, (_, at, _) in self._entries.items() if now - at > self._ttl_s]:
            del self._entries[k]
        ident = (owner, scope, key)
        entry = self._entries.get(ident)
        if entry is not None:
            if entry[0] != digest:
                raise IdempotencyConflictError("this Idempotency-Key was used with another request")
            return await asyncio.shield(entry[2])
        if len(self._entries) >= self._max:
            raise RateLimitedError("too many idempotent requests in flight", retry_after=1.0)
        future: asyncio.Future[T] = asyncio.ensure_future(attempt())
        self._entries[ident] = (digest, now, future)
        try:
            return await asyncio.shield(future)
        except BaseException:
            if future.done() and future.exception() is not None:
                self._entries.pop(ident, None)  # a failed attempt may be retried
            raise
