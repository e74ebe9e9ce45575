"""Cancelling a run that is under way.

A surface makes a `CancelToken` for each run it starts and cancels it when its client is
gone: an MCP `notifications/cancelled`, an HTTP client that disconnects (also in the middle
of an SSE stream), a client-side timeout. The run's collect loop wakes at once, the
container is killed, and the run ends with outcome `cancelled` and the output it wrote until
then (on the RunResult, and on the audit trail's run_end). A run cancelled before its code
was handed over never starts (`RunCancelledError`). Either way the run slot stays held until
the container is removed, as for every run, so a client that cancels and retries at once
cannot hold more slots than its key may.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sandbox.exceptions import SandboxError

CANCELLED = "cancelled"
"""The outcome (RunResult.error) of a run whose caller cancelled it."""


class RunCancelledError(SandboxError, RuntimeError):
    """The run was cancelled before its code was handed over: nothing ran."""

    code, http_status = "cancelled", 499  # nginx's "client closed request": nobody reads it


class CancelToken:
    """Asks a run to stop. Cancelling is thread-safe, and idempotent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._hooks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Stop the run: hooks run now, in this thread."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()

    def on_cancel(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call `hook` when the token is cancelled (at once if it already is). Returns a
        function that forgets the hook; the hook must not block."""
        with self._lock:
            if not self._cancelled:
                self._hooks.append(hook)
                return lambda: self._forget(hook)
        hook()
        return lambda: None

    def _forget(self, hook: Callable[[], None]) -> None:
        with self._lock:
            if hook in self._hooks:
                self._hooks.remove(hook)
