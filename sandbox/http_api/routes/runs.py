"""Runs: code, argv commands, and code with its output streamed as Server-Sent Events.

Every run holds a run slot from core admission. The slot is waited for here without a
thread, and released by the thread that ran the code once the run is over, so a client
that drops its connection cannot free a slot while its run goes on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from sandbox.core.admission import Principal, Slot
from sandbox.core.aio import run_admitted, run_with, wait_slot
from sandbox.exceptions import SandboxError, describe
from sandbox.http_api.deps import Caller, State, owned
from sandbox.http_api.schemas import CommandRequest, RunRequest
from sandbox.http_api.state import AppState
from sandbox.models import RunResult

router = APIRouter(prefix="/v1/sessions/{sid}", tags=["runs"])


@router.post("/runs", response_model=RunResult)
async def run(sid: str, body: RunRequest, request: Request, key: Caller, state: State) -> RunResult:
    s = owned(state, key, sid)

    async def attempt() -> RunResult:
        return await run_admitted(
            state.orc(),
            key,
            "rest",
            lambda slot: s.run(body.code, body.timeout, body.env, slot=slot),
        )

    return await _once(request, state, key, sid, body.model_dump_json().encode(), attempt)


@router.post("/commands", response_model=RunResult)
async def run_command(
    sid: str, body: CommandRequest, request: Request, key: Caller, state: State
) -> RunResult:
    s = owned(state, key, sid)

    async def attempt() -> RunResult:
        return await run_admitted(
            state.orc(),
            key,
            "rest",
            lambda slot: s.run_command(body.command, body.timeout, body.env, slot=slot),
        )

    return await _once(request, state, key, sid, body.model_dump_json().encode(), attempt)


async def _once(
    request: Request,
    state: AppState,
    key: Principal,
    sid: str,
    body: bytes,
    attempt: Callable[[], Awaitable[RunResult]],
) -> RunResult:
    idem = request.headers.get("idempotency-key")
    if idem is None:
        return await attempt()
    return await state.idempotency.once(key.owner, sid, idem, body, attempt)


@router.post("/runs/stream")
async def run_stream(sid: str, body: RunRequest, key: Caller, state: State) -> StreamingResponse:
    s = owned(state, key, sid)
    slot = await wait_slot(state.orc(), key, "sse")  # refused before the stream starts
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()

    def on_output(stream: str, text: str) -> None:
        loop.call_soon_threadsafe(events.put_nowait, (stream, text))

    def work(held: Slot) -> RunResult:
        return s.run(body.code, body.timeout, body.env, on_output, slot=held)

    # Started now, not when the client reads: the run and its slot do not depend on the client.
    task = asyncio.ensure_future(run_with(slot, work))
    task.add_done_callback(lambda _: events.put_nowait(None))

    async def stream() -> AsyncIterator[str]:
        while (item := await events.get()) is not None:
            yield f"event: {item[0]}\ndata: {json.dumps(item[1])}\n\n"
        try:
            result = task.result()
        except SandboxError as exc:
            code = describe(exc)[1]
            # An unexplained error's message may name host paths: it stays in the log.
            message = "internal error" if code == "internal" else str(exc)[:500]
            error = {"code": code, "message": message}
            yield f"event: error\ndata: {json.dumps(error)}\n\n"
            return
        yield f"event: result\ndata: {result.model_dump_json()}\n\n"

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
    )
