"""Fair shares of the engine's container starts.

Every run starts a fresh container, and the engine starts only so many a second on a machine
(creating, starting, killing and removing a container costs the engine's and the kernel's CPU).
A tenant churning short runs on every slot it has would take that throughput from everyone,
and another tenant's next run would wait behind it. So while the starts of the last second
exceed the engine's budget, a key that has already had its share (the budget divided among
the keys starting runs) waits; below the budget nobody waits, so one tenant alone on the
machine is never slowed. Not thread-safe on its own: `RunSlots` calls it under its lock.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

WINDOW_S = 1.0


class StartShare:
    """Starts per key over the last second, and whether a key may start one more now."""

    def __init__(self, per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = per_s * WINDOW_S
        self._clock = clock
        self._starts: dict[str, deque[float]] = {}
        self._total = 0

    def now(self) -> float:
        return self._clock()

    def allows(self, key: str, wanting: Iterable[str], now: float) -> bool:
        """Whether `key` may start a run now; `wanting` are the keys waiting to start one."""
        self._expire(now)
        if self.budget <= 0 or self._total < self.budget:
            return True
        active = set(self._starts) | set(wanting) | {key}
        if len(active) == 1:
            return True  # nobody else wants the engine: its whole budget is this key's
        share = max(1.0, self.budget / len(active))
        mine = self._starts.get(key)
        return mine is None or len(mine) < share

    def started(self, key: str, now: float) -> None:
        self._starts.setdefault(key, deque()).append(now)
        self._total += 1

    def next_change(self, now: float) -> float | None:
        """Seconds until the oldest start leaves the window (when a refusal may turn), or None."""
        self._expire(now)
        oldest = min((q[0] for q in self._starts.values()), default=None)
        return None if oldest is None else max(0.0, oldest + WINDOW_S - now)

    def _expire(self, now: float) -> None:
        edge = now - WINDOW_S
        for key in list(self._starts):
            q = self._starts[key]
            while q and q[0] <= edge:
                q.popleft()
                self._total -= 1
            if not q:
                del self._starts[key]
