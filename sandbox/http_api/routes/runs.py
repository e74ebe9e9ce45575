"""Runs: code, argv commands, and code with its output streamed as Server-Sent Events.

Every run holds a run slot from core admission. The slot is waited for here without a
thread, and released by the thread that ran the code once the run's container is gone, so a
client that drops its connection cannot free a slot while its run goes on.

A client that disconnects (a client-side timeout does) cancels its run: the container is
killed at once and the run ends as `cancelled` with the output it wrote (the audit trail has
it). That holds in the middle of an SSE stream too. With an Idempotency-Key the client may
come back for the result: the run is cancelled once no request has waited for it for the
store's grace (2 s), so a retry after a dropped connection still gets the same run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from sandbox.core.admission import Principal, Slot
from sandbox.core.aio import run_admitted, run_with, wait_slot
from sandbox.core.budget import budgeted
from sandbox.core.cancel import CancelToken, RunCancelledError
from sandbox.exceptions import SandboxError, describe
from sandbox.http_api.deps import Caller, State, owned
from sandbox.http_api.openapi import EVENT_STREAM, IDEMPOTENT
from sandbox.http_api.schemas import CommandRequest, RunRequest
from sandbox.http_api.state import AppState
from sandbox.models import RunResult

router = APIRouter(prefix="/v1/sessions/{sid}", tags=["runs"])


@router.post("/runs", response_model=RunResult, openapi_extra=IDEMPOTENT)
async def run(sid: str, body: RunRequest, request: Request, key: Caller, state: State) -> RunResult:
    """Run Python in a fresh container of the session and answer when it is over. The code's
    own failures (an exception, a timeout, memory) are a 200 with the RunResult saying so."""
    s = owned(state, key, sid)
    cancel = CancelToken()

    async def attempt() -> RunResult:
        return await run_admitted(
            state.orc(),
            key,
            "rest",
            lambda slot: s.run(body.code, body.timeout, body.env, slot=slot, cancel=cancel),
            cancel,
        )

    body_bytes = body.model_dump_json().encode()
    return for_budget(
        await _once(request, state, key, sid, body_bytes, attempt, cancel), body.budget
    )


@router.post("/commands", response_model=RunResult, openapi_extra=IDEMPOTENT)
async def run_command(
    sid: str, body: CommandRequest, request: Request, key: Caller, state: State
) -> RunResult:
    """Run a command in a fresh container, if the session's profile allows it: an argv list,
    or a string split like a shell would (shell syntax such as ; | $( is refused)."""
    s = owned(state, key, sid)
    cancel = CancelToken()

    async def attempt() -> RunResult:
        return await run_admitted(
            state.orc(),
            key,
            "rest",
            lambda slot: s.run_command(
                body.command, body.timeout, body.env, slot=slot, cancel=cancel
            ),
            cancel,
        )

    body_bytes = body.model_dump_json().encode()
    return for_budget(
        await _once(request, state, key, sid, body_bytes, attempt, cancel), body.budget
    )


def for_budget(result: RunResult, budget: int | None) -> RunResult:
    """The result as asked: its streams within `budget` characters (core/budget.py), or whole."""
    return budgeted(result, budget) if budget is not None else result


async def _once(
    request: Request,
    state: AppState,
    key: Principal,
    sid: str,
    body: bytes,
    attempt: Callable[[], Awaitable[RunResult]],
    cancel: CancelToken,
) -> RunResult:
    idem = request.headers.get("idempotency-key")
    if idem is None:
        return await until_disconnect(request, attempt())
    # The run outlives this request: a retry with the same key gets it. Once no request has
    # waited for it for a moment (the client gave up), it is cancelled.
    work = state.idempotency.once(key.owner, sid, idem, body, attempt, cancel.cancel)
    return await until_disconnect(request, work)


async def until_disconnect(request: Request, work: Awaitable[RunResult]) -> RunResult:
    """Await `work`, cancelling it if the client disconnects first.

    Raises:
        RunCancelledError: the client is gone (nobody reads the answer).
    """
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()  # also when this request itself is cancelled (server shutdown)
    if not task.done() or task.cancelled():
        raise RunCancelledError("the client disconnected")
    return task.result()


async def _disconnected(request: Request) -> None:
    # The body has been read, so the next message can only be the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post("/runs/stream", openapi_extra=EVENT_STREAM)
async def run_stream(sid: str, body: RunRequest, key: Caller, state: State) -> StreamingResponse:
    """Run Python and stream its output as Server-Sent Events while it runs; closing the stream
    cancels the run."""
    s = owned(state, key, sid)
    slot = await wait_slot(state.orc(), key, "sse")  # refused before the stream starts
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
    cancel = CancelToken()

    def on_output(stream: str, text: str) -> None:
        loop.call_soon_threadsafe(events.put_nowait, (stream, text))

    def work(held: Slot) -> RunResult:
        return s.run(body.code, body.timeout, body.env, on_output, slot=held, cancel=cancel)

    # Started now, not when the client reads: a client that never reads still gets its run.
    task = asyncio.ensure_future(run_with(slot, work, cancel))
    task.add_done_callback(lambda _: events.put_nowait(None))

    async def stream() -> AsyncIterator[str]:
        try:
            while (item := await events.get()) is not None:
                yield f"event: {item[0]}\ndata: {json.dumps(item[1])}\n\n"
        finally:
            # Closed before the run ended: the client hung up (or timed out) mid-stream.
            cancel.cancel()
        try:
            result = task.result()
        except SandboxError as exc:
            code = describe(exc)[1]
            # An unexplained error's message may name host paths: it stays in the log.
            message = "internal error" if code == "internal" else str(exc)[:500]
            error = {"code": code, "message": message}
            yield f"event: error\ndata: {json.dumps(error)}\n\n"
            return
        yield f"event: result\ndata: {for_budget(result, body.budget).model_dump_json()}\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
    )
