"""Request bodies read as a stream by a worker thread: an upload goes to disk chunk by chunk and
is never held whole in the controller's memory (BodyLimit still caps its size and pace)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterator
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from fastapi import Request

T = TypeVar("T")


# A streamed upload holds a worker thread while its body arrives: at most this many at once
# (per event loop), so uploads can never take the threads every other request needs.
_UPLOADS_AT_ONCE = 8
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


_DOWNLOADS_AT_ONCE = 4
_download_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _uploads() -> anyio.CapacityLimiter:
    return _per_loop(_limiters, _UPLOADS_AT_ONCE)


def downloads() -> anyio.CapacityLimiter:
    """Downloads read a whole file (up to max_file_mb) into memory: so many at once at most."""
    return _per_loop(_download_limiters, _DOWNLOADS_AT_ONCE)


def _per_loop(
    limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter],
    size: int,
) -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = limiters.get(loop)
    if limiter is None:
        limiter = limiters[loop] = anyio.CapacityLimiter(size)
    return limiter


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

    return await anyio.to_thread.run_sync(lambda: consume(chunks()), limiter=_uploads())
