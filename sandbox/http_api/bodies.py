"""Request bodies read as a stream by a worker thread: an upload goes to disk chunk by chunk and
is never held whole in the controller's memory (BodyLimit still caps its size and pace)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import anyio.from_thread
import anyio.to_thread
from fastapi import Request

T = TypeVar("T")


async def with_body_chunks(request: Request, consume: Callable[[Iterator[bytes]], T]) -> T:
    """Run `consume(chunks)` in a worker thread; `chunks` yields the body as it arrives."""
    stream = request.stream().__aiter__()

    async def next_chunk() -> bytes | None:
        try:
            return await stream.__anext__()
        except StopAsyncIteration:
            return None

    def chunks() -> Iterator[bytes]:
        while (chunk := anyio.from_thread.run(next_chunk)) is not None:
            if chunk:
                yield chunk

    return await anyio.to_thread.run_sync(lambda: consume(chunks()))
