"""Boxes booting at once, with owners taking turns.

A box's boot (the engine creating and starting its container, its runtime starting up) is
CPU-bound work for the engine and the kernel. Booted all at once, one owner's churn of short
runs would make every other owner's next box wait behind it: the engine shares its time among
every boot in flight. So only so many boot at once (by default one per core), and when a boot
may begin, the owner with the fewest in flight goes first, then the one that waited longest.
An owner alone on the machine uses every place.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class BootGate:
    """At most `limit` boots at once (0: no limit); waiting owners take turns."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._cond = threading.Condition()
        self._booting: dict[str, int] = {}
        self._busy = 0
        self._waiting: dict[int, str] = {}
        self._tickets = itertools.count()

    @contextmanager
    def boot(self, owner: str) -> Iterator[None]:
        """Hold a place while the block runs; waits for one, fairly, when all are taken."""
        self._acquire(owner)
        try:
            yield
        finally:
            self._release(owner)

    def booting(self, owner: str | None = None) -> int:
        with self._cond:
            return self._busy if owner is None else self._booting.get(owner, 0)

    def _acquire(self, owner: str) -> None:
        with self._cond:
            ticket = next(self._tickets)
            self._waiting[ticket] = owner
            try:
                while not self._my_turn(ticket):
                    self._cond.wait()
            finally:
                del self._waiting[ticket]
            self._busy += 1
            self._booting[owner] = self._booting.get(owner, 0) + 1
            # Another place may still be free, for the waiter whose turn is next.
            self._cond.notify_all()

    def _my_turn(self, ticket: int) -> bool:
        if self.limit <= 0:
            return True
        if self._busy >= self.limit:
            return False
        # Fewest boots in flight first; among equals, the oldest ticket.
        first = min(self._waiting, key=lambda t: (self._booting.get(self._waiting[t], 0), t))
        return first == ticket

    def _release(self, owner: str) -> None:
        with self._cond:
            self._busy -= 1
            left = self._booting[owner] - 1
            if left:
                self._booting[owner] = left
            else:
                del self._booting[owner]
            self._cond.notify_all()
