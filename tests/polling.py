"""Waiting in tests without sleeping blind: poll a condition until it holds or time is up."""

from __future__ import annotations

import threading
from collections.abc import Callable


def wait_until(check: Callable[[], bool], timeout: float = 20.0, every: float = 0.02) -> bool:
    """Poll `check` until it holds, at most `timeout` seconds; whether it held."""
    pause = threading.Event()
    for _ in range(int(timeout / every)):
        if check():
            return True
        pause.wait(every)
    return check()
