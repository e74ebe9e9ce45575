"""A token bucket, shared by the tool bridge (calls per run) and the HTTP API (requests per key)."""

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
