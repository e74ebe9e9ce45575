"""A token bucket, shared by the tool bridge (calls per run) and the HTTP API (requests per key),
and the bridge's budget of upstream restarts per owner."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _level: float = field(default=-1.0)
    _at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self._lock:
            now = self.clock()
            if self._level < 0:
                self._level, self._at = float(self.burst), now
            self._level = min(self.burst, self._level + (now - self._at) * self.rate)
            self._at = now
            if self._level < 1:
                return False
            self._level -= 1
            return True

    def retry_after(self) -> float:
        """Seconds until the next token is available."""
        with self._lock:
            return max(0.0, (1 - self._level) / self.rate)


class RestartBudget:
    """At most `limit` upstream restarts per (owner, server) in a sliding `window_s`."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self._limit, self._window_s, self._clock = limit, window_s, clock
        self._spent: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def allows(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return len(self._prune(key)) < self._limit

    def spend(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._spent[key] = [*self._prune(key), self._clock()]

    def _prune(self, key: tuple[str, str]) -> list[float]:
        """The key's restarts within the window; a key with none left is forgotten (reading
        never adds one)."""
        cutoff = self._clock() - self._window_s
        kept = [t for t in self._spent.get(key, []) if t > cutoff]
        if not kept:
            self._spent.pop(key, None)
        return kept
