"""For async surfaces (HTTP, MCP): wait for a run slot without a thread, then run the blocking
core call in a worker thread, handing the slot over to the session."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

from sandbox.core.admission import Principal, Slot, abandon
from sandbox.core.orchestrator import Orchestrator

T = TypeVar("T")


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
    orc: Orchestrator, principal: Principal, surface: str, work: Callable[[Slot], T]
) -> T:
    """Wait for a slot, then `run_with` it."""
    return await run_with(await wait_slot(orc, principal, surface), work)


async def run_with(slot: Slot, work: Callable[[Slot], T]) -> T:
    """`work(slot)` in a worker thread. `work` hands the slot to a Session run, which keeps it
    until the run's container is gone; if the worker never starts (the request was cancelled
    first), the slot is released here."""
    started = False

    def start() -> T:
        nonlocal started
        started = True
        return work(slot)

    try:
        return await anyio.to_thread.run_sync(start)
    finally:
        if not started:
            slot.release()
