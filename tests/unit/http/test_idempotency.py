"""The Idempotency-Key store: one execution per key, results on disk within a byte budget."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sandbox.exceptions import IdempotencyConflictError, IdempotencyGoneError, InvalidInputError
from sandbox.http_api.idempotency import IdempotencyStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(tmp_path: Path, clock: Clock, **kw: int) -> IdempotencyStore[str]:
    return IdempotencyStore(
        tmp_path / "idem", str.encode, bytes.decode, ttl_s=600, clock=clock, **kw
    )


def test_concurrent_retries_execute_once_and_replay_from_disk(tmp_path: Path) -> None:
    s = store(tmp_path, Clock())
    runs = []

    async def attempt() -> str:
        runs.append(1)
        await asyncio.sleep(0.05)
        return "x" * 1000

    async def main() -> list[str]:
        first = await asyncio.gather(*(s.once("a", "s1", "k", b"body", attempt) for _ in range(3)))
        again = await s.once("a", "s1", "k", b"body", attempt)
        return [*first, again]

    assert asyncio.run(main()) == ["x" * 1000] * 4 and runs == [1]
    assert s.stored_bytes == 1000  # the finished result lives on disk, not in memory


def test_a_key_reused_with_another_body_is_a_conflict(tmp_path: Path) -> None:
    s = store(tmp_path, Clock())

    async def attempt() -> str:
        return "ok"

    async def main() -> None:
        await s.once("a", "s1", "k", b"one", attempt)
        with pytest.raises(IdempotencyConflictError):
            await s.once("a", "s1", "k", b"two", attempt)
        with pytest.raises(InvalidInputError):
            await s.once("a", "s1", "k" * 65, b"one", attempt)
        assert await s.once("b", "s1", "k", b"two", attempt) == "ok"  # keys are per owner

    asyncio.run(main())


def test_past_the_budget_old_results_are_gone_not_rerun(tmp_path: Path) -> None:
    clock = Clock()
    s = store(tmp_path, clock, max_bytes=2500)
    runs: list[str] = []

    def attempt(tag: str):  # type: ignore[no-untyped-def]
        async def run() -> str:
            runs.append(tag)
            return tag * 1000

        return run

    async def main() -> None:
        for tag in "abc":
            clock.now += 1
            await s.once("o", "s", tag, b"b", attempt(tag))
        assert s.stored_bytes <= 2500
        with pytest.raises(IdempotencyGoneError):
            await s.once("o", "s", "a", b"b", attempt("a"))
        assert await s.once("o", "s", "c", b"b", attempt("c")) == "c" * 1000

    asyncio.run(main())
    assert runs == ["a", "b", "c"]  # the dropped result was never executed again


def test_a_failed_attempt_may_be_retried_and_old_keys_expire(tmp_path: Path) -> None:
    clock = Clock()
    s = store(tmp_path, clock)
    calls = []

    async def failing() -> str:
        calls.append("f")
        raise RuntimeError("boom")

    async def fine() -> str:
        calls.append("ok")
        return "done"

    async def main() -> None:
        with pytest.raises(RuntimeError):
            await s.once("o", "s", "k", b"b", failing)
        assert await s.once("o", "s", "k", b"b", fine) == "done"
        clock.now += 601
        assert await s.once("o", "s", "k", b"other body", fine) == "done"  # expired: a new key

    asyncio.run(main())
    assert calls == ["f", "ok", "ok"] and s.stored_bytes == 4


def test_a_result_nobody_waits_for_still_moves_to_disk_and_expires(tmp_path: Path) -> None:
    clock = Clock()
    s = store(tmp_path, clock)

    async def attempt() -> str:
        await asyncio.sleep(0.05)
        return "late"

    async def main() -> None:
        waiter = asyncio.ensure_future(s.once("o", "s", "k", b"b", attempt))
        await asyncio.sleep(0.01)
        waiter.cancel()  # the client hung up
        await asyncio.sleep(0.1)  # the attempt itself goes on and ends
        assert s.stored_bytes == 4  # its result is on disk, not held by anyone
        assert await s.once("o", "s", "k", b"b", attempt) == "late"  # a retry gets it
        clock.now += 601
        await s.once("o", "s", "other", b"b", attempt)  # any call sweeps expired entries
        assert s.stored_bytes == 4  # only the new one's

    asyncio.run(main())
