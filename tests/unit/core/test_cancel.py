"""Cancelling a run (sandbox.core.cancel) on the local-process backend: the container is killed
at once, the run ends as `cancelled` with its output so far, the slot is held until the
container is gone, and the session takes the next run."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from sandbox import Orchestrator
from sandbox.backends import LocalProcessBackend, LocalProcessBackendConfig
from sandbox.backends.base import ContainerRef
from sandbox.core.aio import run_admitted
from sandbox.core.cancel import CancelToken, RunCancelledError
from sandbox.core.session import Session
from sandbox.models import OutputEvent, RunResult
from tests.polling import wait_until
from tests.unit.conftest import MakeOrc, local_settings

LONG = "import time\nprint('started', flush=True)\ntime.sleep(60)\nprint('never')"


def run_ends(orc: Orchestrator) -> list[dict[str, Any]]:
    return [r for r in orc.audit.read() if r["event"] == "run_end"]


def started_then_cancelled(s: Session, cancel: CancelToken) -> RunResult:
    """Run LONG, cancelling it once its first line of output is in."""
    seen = threading.Event()

    def on_output(stream: str, text: str) -> None:
        seen.set()

    threading.Thread(target=lambda: seen.wait(30) and cancel.cancel(), daemon=True).start()
    return s.run(LONG, on_output=on_output, cancel=cancel)


def test_a_cancelled_run_is_killed_with_its_output_so_far_and_on_record(
    local_orc: Orchestrator,
) -> None:
    with local_orc.session("alice") as s:
        result = started_then_cancelled(s, CancelToken())
        assert result.outcome == "cancelled" and not result.ok
        assert result.stdout == "started\n" and result.exit_code == 137
        # Nobody received it, so the output so far is kept in the workspace too.
        saved = f"/workspace/.outputs/{result.exec_id}/stdout"
        assert result.outputs == {"stdout": saved}
        assert s.download(saved.removeprefix("/workspace/")) == b"started\n"
        assert s.run("print(2)").stdout == "2\n"  # the session takes the next run
    ends = run_ends(local_orc)
    assert [r["outcome"] for r in ends] == ["cancelled", "ok"]
    assert ends[0]["exec_id"] == result.exec_id


def test_a_run_cancelled_before_it_starts_never_runs(local_orc: Orchestrator) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with local_orc.session("alice") as s:
        with pytest.raises(RunCancelledError):
            s.run("open('ran', 'w').write('yes')", cancel=cancel)
        assert s.list_files() == []
    assert local_orc.admission.slots.in_use() == 0
    assert not [r for r in local_orc.audit.read() if r["event"] == "run_start"]


class GatedRemovals(LocalProcessBackend):
    """Removes a container only once `go` is set (bounded), to watch the slot meanwhile."""

    def __init__(self) -> None:
        super().__init__(LocalProcessBackendConfig(unsafe_no_isolation=True))
        self.go = threading.Event()

    def remove(self, ref: ContainerRef) -> None:
        self.go.wait(30)
        super().remove(ref)


def test_the_slot_stays_held_until_the_cancelled_runs_container_is_removed(
    tmp_path: Path,
) -> None:
    backend = GatedRemovals()
    with (
        Orchestrator(local_settings(tmp_path), backend=backend) as orc,
        orc.session("alice") as s,
    ):
        result = started_then_cancelled(s, CancelToken())
        assert result.outcome == "cancelled"
        assert orc.admission.slots.in_use() == 1  # its container is not gone yet
        backend.go.set()
        assert wait_until(lambda: orc.admission.slots.in_use() == 0)


def test_closing_a_stream_early_cancels_its_run(local_orc: Orchestrator) -> None:
    with local_orc.session("alice") as s:
        events = s.stream(LONG)
        first = next(events)
        assert isinstance(first, OutputEvent) and first.text == "started\n"
        events.close()
        assert wait_until(lambda: len(run_ends(local_orc)) == 1)
        assert run_ends(local_orc)[0]["outcome"] == "cancelled"
        assert s.run("print(3)").stdout == "3\n"


def test_cancelling_the_awaiting_task_cancels_the_run_at_once(make_orc: MakeOrc) -> None:
    orc = make_orc()
    s = orc.session("alice")
    seen = threading.Event()

    async def main() -> None:
        cancel = CancelToken()

        def work(slot: Any) -> RunResult:
            return s.run(LONG, on_output=lambda *_: seen.set(), slot=slot, cancel=cancel)

        task = asyncio.ensure_future(run_admitted(orc, s.principal, "rest", work, cancel))
        assert await asyncio.to_thread(seen.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancel.cancelled

    asyncio.run(main())
    assert wait_until(lambda: len(run_ends(orc)) == 1)
    assert run_ends(orc)[0]["outcome"] == "cancelled"
    assert wait_until(lambda: orc.admission.slots.in_use() == 0)
    s.close()


def test_a_token_calls_its_hooks_once_and_forgets_removed_ones() -> None:
    token, calls = CancelToken(), []
    token.on_cancel(lambda: calls.append("a"))
    forget = token.on_cancel(lambda: calls.append("b"))
    forget()
    token.cancel()
    token.cancel()
    token.on_cancel(lambda: calls.append("late"))  # already cancelled: called at once
    assert calls == ["a", "late"]
