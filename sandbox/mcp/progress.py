"""A running execute_code reports to its client as output arrives.

Two kinds of notification, each at most once per `interval`: progress (when the client sent
a progress token: elapsed seconds of the timeout, and the last line written), and log
messages carrying the output itself (logger "stdout" or "stderr"; on 2026-07-28 only when
the request opted in, which the SDK checks). The output is PII-tokenized line by line by the
core before it gets here. A flood does not become a flood of notifications: at most
`budget` characters are sent as log messages in all, then one line says the rest is in the
result. A client that has gone away is not an error of the run.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import warnings
from contextlib import suppress

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning

logger = logging.getLogger(__name__)

# Logging notifications are deprecated as of 2026-07-28, still part of every earlier version,
# and what clients of those versions show while a tool runs.
warnings.filterwarnings("ignore", "The logging capability is deprecated", MCPDeprecationWarning)


class OutputRelay:
    """Hands output from the run's thread to notifications on the event loop."""

    def __init__(self, ctx: Context, timeout_s: float, budget: int, interval: float = 0.5) -> None:
        self._ctx, self._timeout, self._budget, self._interval = ctx, timeout_s, budget, interval
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []
        self._pending_chars = 0
        self._logged = 0
        self._last_line = ""
        self._wake = asyncio.Event()
        self._done = False
        self._start = time.monotonic()
        self._progress = 0.0

    def on_output(self, stream: str, text: str) -> None:
        """From the run's thread: output (already tokenized) as it arrives."""
        with self._lock:
            if self._pending_chars < self._budget:  # past it only the last line counts
                self._pending.append((stream, text))
                self._pending_chars += len(text)
            line = text.rstrip("\n").rsplit("\n", 1)[-1]
            if line:
                self._last_line = line[:200]
        self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        """Send notifications until `stop()`; a heartbeat of progress every few seconds."""
        quiet_since = time.monotonic()
        while not self._done:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            self._wake.clear()
            if self._done:
                break
            if await self._flush() or time.monotonic() - quiet_since >= 5.0:
                await self._report()
                quiet_since = time.monotonic()
            await asyncio.sleep(self._interval)  # coalesce what arrives meanwhile

    def stop(self) -> None:
        self._done = True
        self._wake.set()

    async def _flush(self) -> bool:
        with self._lock:
            pending, self._pending, self._pending_chars = self._pending, [], 0
        if not pending:
            return False
        for stream in ("stdout", "stderr"):
            text = "".join(t for s, t in pending if s == stream)
            room = self._budget - self._logged
            if not text or room <= 0:
                continue
            if len(text) > room:
                text = text[:room] + "\n[... more output; the result has its start and end ...]"
            self._logged += len(text)
            await self._send(self._ctx.log("info", text, logger_name=stream))
        return True

    async def _report(self) -> None:
        # Progress must grow with every notification.
        self._progress = max(self._progress + 0.001, round(time.monotonic() - self._start, 3))
        with self._lock:
            line = self._last_line
        message = f"running; last output: {line}" if line else "running"
        await self._send(self._ctx.report_progress(self._progress, self._timeout, message))

    async def _send(self, notification: object) -> None:
        try:
            await notification  # type: ignore[misc]  # a coroutine of the SDK
        except Exception as exc:  # noqa: BLE001 - the MCP edge: a client gone is not the run's fault
            logger.debug("notification not sent: %s", exc)
