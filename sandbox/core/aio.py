"""For async surfaces (HTTP, MCP): wait for a run slot without a thread, then run the blocking
core call in a worker thread, handing the slot over to the session.

Cancelling the awaiting task (an MCP cancellation, an HTTP client gone, a client-side
timeout) cancels the run: its container is killed at once and the run ends as `cancelled`
(see `sandbox.core.cancel`). The task does not wait for that: the worker thread finishes the
run, keeping the slot until the container is removed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from sandbox.core.admission import Principal, Slot, abandon
from sandbox.core.cancel import CancelToken, RunCancelledError
from sandbox.core.orchestrator import Orchestrator

T = TypeVar("T")
Work = Callable[[Slot], T]
"""The blocking run: it hands the slot (and the cancel token it closes over) to a Session run."""


async def wait_slot(orc: Orchestrator, principal: Principal, surface: str) -> Slot:
    """A held run slot; the wait is bounded by `run_queue_wait_s` and costs no thread.

    Raises:
        QueueFullError: the queue is full, or no slot came free in time (audited).
    """
    admission = orc.admission
    fut = admission.request_slot(principal, surface=surface)
    try:
        return await asyncio.wait_for(
            asyncio.wrap_future(fut), timeout=admission.rules.run_queue_wait_s
        )
    except TimeoutError:
        raise admission.gave_up(fut, principal, surface) from None
    except BaseException:
        abandon(fut)
        raise


async def run_admitted(
    orc: Orchestrator,
    principal: Principal,
    surface: str,
    work: Work[T],
    cancel: CancelToken | None = None,
) -> T:
    """Wait for a slot, then `run_with` it."""
    return await run_with(await wait_slot(orc, principal, surface), work, cancel)


async def run_with(slot: Slot, work: Work[T], cancel: CancelToken | None = None) -> T:
    """`work(slot)` in a worker thread. Cancelling the awaiting task cancels `cancel` (the
    token `work` hands to its run) and returns at once. `work` hands the slot to a Session
    run, which keeps it until the run's container is gone; if the worker never starts (the
    task was cancelled first), the slot is released here and the work is never done."""
    lock = threading.Lock()
    started = dropped = False

    def start() -> T:
        nonlocal started
        with lock:
            if dropped:
                raise RunCancelledError("the run was cancelled before it started")
            started = True
        return work(slot)

    try:
        return await anyio.to_thread.run_sync(start, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        if cancel is not None:
            cancel.cancel()
        raise
    finally:
        with lock:
            if not started:
                dropped = True
                slot.release()
