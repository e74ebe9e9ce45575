"""The run pipeline of one session: its warm container, delivery, collection, the result.

Every run gets a container of its own. To keep that fast the session's *next* container is
created, started and dialled in to its run socket ahead of time, waiting for code; a run
hands it the code, reads the result, and the container is removed in the background while
the one after it warms up. A warm container holds no code and no token until its run begins.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from sandbox import policy
from sandbox.audit import AuditError
from sandbox.backends.base import ContainerRef
from sandbox.channel import EGRESS_SOCKET, RunChannel
from sandbox.core.assembly import Parts
from sandbox.core.box import Box, Warm
from sandbox.core.calls import call_handler, with_cancel
from sandbox.core.cancel import CANCELLED, CancelToken, RunCancelledError
from sandbox.core.output import LineStream
from sandbox.core.outputs import save_outputs
from sandbox.egress import EgressContext, EgressProxy
from sandbox.exceptions import ContainerStartError, NotFoundError, SandboxError, SessionClosedError
from sandbox.models import RunResult
from sandbox.pii.code import resolve_in_code
from sandbox.pii.cut import MARGIN, bounded_text
from sandbox.pii.restore import limit_vault
from sandbox.storage import SANDBOX_GID, SANDBOX_UID

logger = logging.getLogger(__name__)

_KILLED_EXIT = 137  # 128 + SIGKILL, as a shell and Docker report it
# A warm container that waits longer than this is past its deadline label and may be reaped.
_MAX_IDLE_S = 6 * 3600
_NO_TOOLS_CALL_BYTES = 64 * 1024


class Runner:
    """Runs one session's code, one fresh container per run, one run at a time."""

    def __init__(self, parts: Parts, box: Box, warm: bool = True) -> None:
        self._parts, self._box = parts, box
        self._warm = warm and parts.settings.warm  # off: a session for one call only
        if box.tokenizer is not None:  # bounded, and on the record once it is full
            limit_vault(box.tokenizer.vault, parts.settings.pii, parts.records, box.owner)
        self._lock = threading.Lock()
        self._next: Future[Warm] | None = None
        self._cleanups: list[Future[None]] = []
        self._closed = False
        if self._warm:
            self._next = parts.pool.submit(self._prepare)

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def execute(
        self,
        code: str,
        timeout: float,
        env: dict[str, str],
        on_output: Callable[[str, str], None] | None,
        run_start: dict[str, object],
        on_removed: Callable[[], None] = lambda: None,
        cancel: CancelToken | None = None,
    ) -> RunResult:
        """Run `code` in the waiting (or a new) container; `run_start` joins its audit record.
        `on_removed` is called exactly once, when the run's container is gone (or none was had):
        a run slot is held until then, whoever stopped waiting for the result. Once `cancel`
        is cancelled the container is killed and the run ends as `cancelled`.

        Raises:
            AuditError: the start of the run could not be recorded (nothing ran).
            BackendError: the engine failed to provide a container.
            RunCancelledError: cancelled before the code was handed over (nothing ran).
        """
        with self._lock:
            try:
                if self._closed:  # closed while this run waited for the lock
                    raise SessionClosedError(f"session {self._box.session_id} is closed")
                _raise_if_cancelled(cancel)
                warm = self._take_warm()
            except BaseException:
                on_removed()  # no container was had
                raise
            if cancel is not None and cancel.cancelled:  # while a container was on its way
                self._remove_later(warm, on_removed)
                _raise_if_cancelled(cancel)
            code = resolve_in_code(self._box.tokenizer, code)  # see sandbox/pii/code.py
            return self._run_on(warm, code, timeout, env, on_output, run_start, on_removed, cancel)

    def _run_on(
        self,
        warm: Warm,
        code: str,
        timeout: float,
        env: dict[str, str],
        on_output: Callable[[str, str], None] | None,
        run_start: dict[str, object],
        on_removed: Callable[[], None],
        cancel: CancelToken | None,
    ) -> RunResult:
        bridge = self._parts.bridge
        # The box learns the tool-argument cap from the run frame; the host enforces it too.
        max_call_bytes = bridge.limits.max_args_bytes if bridge else _NO_TOOLS_CALL_BYTES
        unended: str | None = None  # a run_start with no run_end yet
        try:
            for attempt in (1, 2):
                # Fail closed: no code runs unless its start is on the record.
                self._audit("run_start", warm.exec_id, timeout=timeout, **run_start)
                unended = warm.exec_id
                # The token exists from here on; the waiting container never held one.
                token = (
                    bridge.tokens.mint(self._box.session_id, warm.exec_id, timeout + 5)
                    if bridge
                    else ""
                )
                started = time.monotonic()
                try:
                    warm.channel.deliver(
                        code, env, policy.WORKSPACE, token, max_call_bytes=max_call_bytes
                    )
                    break
                except ContainerStartError:
                    if attempt == 2:
                        raise
                    # The waiting container died (reaped, engine restart): one cold retry.
                    self._audit(
                        "run_end", warm.exec_id, outcome="not_started", reason="container_gone"
                    )
                    unended = None
                    if bridge:
                        bridge.tokens.revoke(warm.exec_id)
                    self._discard(warm)
                    warm = self._prepare()
            result = self._finish(warm, started, started + timeout, on_output, cancel)
            self._audit(
                "run_end",
                warm.exec_id,
                outcome=result.outcome,
                exit_code=result.exit_code,
                duration_s=round(result.duration_s, 6),
                timed_out=result.timed_out,
                oom_killed=result.oom_killed,
                output_truncated=result.output_truncated,
            )
            unended = None
            return result
        finally:
            if unended is not None:
                with contextlib.suppress(AuditError):
                    self._audit("run_end", unended, outcome="failed")
            if bridge:
                bridge.tokens.revoke(warm.exec_id)
                bridge.end_run(warm.exec_id)
            self._remove_later(warm, on_removed)

    def _audit(self, event: str, exec_id: str, **fields: object) -> None:
        self._parts.audit.record(
            event,
            controller=self._parts.settings.controller_id,
            owner=self._box.owner,
            session=self._box.session_id,
            exec_id=exec_id,
            **fields,
        )

    # -- the warm container ---------------------------------------------------------------

    def _take_warm(self) -> Warm:
        """The waiting container if there is one (or one on its way), else a cold start;
        and the next one starts warming straight away."""
        settings = self._parts.settings
        pending, self._next = self._next, None
        warm: Warm | None = None
        if pending is not None:
            try:
                warm = pending.result(timeout=settings.start_timeout_s)
            except (SandboxError, FutureTimeout) as exc:
                logger.warning("warm container failed (%s); starting one now", exc)
                self._discard_when_up(pending)
        if warm is None:
            warm = self._prepare()
        if self._warm:
            self._next = self._parts.pool.submit(self._prepare)
        return warm

    def _prepare(self) -> Warm:
        parts, box = self._parts, self._box
        exec_id = secrets.token_hex(16)
        channel = RunChannel(parts.storage.runs, SANDBOX_UID, SANDBOX_GID)
        labels = policy.labels_for(
            parts.settings.controller_id,
            box.owner,
            box.session_id,
            exec_id,
            _MAX_IDLE_S + box.limits.timeout_s,
        )
        spec = policy.launch_spec(
            image=parts.image,
            limits=box.limits,
            runtime=box.profile.runtime,
            workspace=box.workspace,
            skills=box.skills,
            channel_dir=channel.dir,
            labels=labels,
            servers=parts.bridge.servers_dir_for(box.owner) if parts.bridge else None,
            owner=box.owner,
        )
        ref: ContainerRef | None = None
        egress: EgressProxy | None = None
        try:
            if box.profile.network == "allowlist":
                egress = EgressProxy(
                    EgressContext(
                        box.owner,
                        box.session_id,
                        exec_id,
                        frozenset(box.profile.egress),
                        box.profile.egress_private,
                    ),
                    parts.records,
                )
                parts.loop.run(egress.start(channel.dir / EGRESS_SOCKET), 10)
            with parts.boots.boot(box.owner):
                ref = parts.backend.create(spec)
                parts.backend.start(ref)
                channel.accept_runtime(time.monotonic() + parts.settings.start_timeout_s)
        except BaseException:
            self._stop_egress(egress)
            channel.close()
            if ref is not None:
                try:
                    parts.backend.remove(ref)
                except SandboxError:  # the first failure is the one to tell; gc removes it
                    logger.exception("removing container %s after a failed start", ref.id)
                    parts.strays.add(ref)
            raise
        return Warm(exec_id, ref, channel, egress)

    def _stop_egress(self, egress: EgressProxy | None) -> None:
        if egress is not None:
            with contextlib.suppress(Exception):
                self._parts.loop.run(egress.stop(), 10)

    def _remove_later(self, warm: Warm, on_removed: Callable[[], None]) -> None:
        """Remove the run's container off the hot path, then call `on_removed`."""
        try:
            # Its own pool: removals (and the run slots they free) never queue behind warm-ups.
            fut = self._parts.removals.submit(self._discard, warm)
        except RuntimeError:  # the pool is shut down: the controller is closing
            self._discard(warm)
            on_removed()
            return
        fut.add_done_callback(lambda _: on_removed())
        self._cleanups.append(fut)

    def _discard(self, warm: Warm) -> None:
        self._stop_egress(warm.egress)
        warm.channel.close()
        try:
            with self._parts.boots.boot(self._box.owner):
                self._parts.backend.remove(warm.ref)
        except SandboxError:
            # `gc` (every minute in `sandbox serve`) tries again.
            logger.exception("removing container of run %s", warm.exec_id)
            self._parts.strays.add(warm.ref)

    # -- collecting the result ------------------------------------------------------------

    def _finish(
        self,
        warm: Warm,
        started: float,
        deadline: float,
        on_output: Callable[[str, str], None] | None,
        cancel: CancelToken | None = None,
    ) -> RunResult:
        backend = self._parts.backend
        # A little past the cap is kept, so a value the cap cuts through is still found and
        # the cut can move before it (`_text`); what is returned stays within the cap.
        cap = self._box.limits.output_bytes + MARGIN
        tokenizer = self._box.tokenizer
        lines = LineStream(on_output, tokenizer) if on_output is not None else None
        on_call, stop = call_handler(self._parts, self._box, warm.exec_id)
        # A cancel wakes the loop below, which then cuts the run off like a broken bound.
        forget = cancel.on_cancel(warm.channel.wake) if cancel is not None else None
        try:
            # collect() enforces the call cap that deliver() told the box, and the run's bounds.
            got = warm.channel.collect(
                deadline,
                cap,
                on_call,
                on_output=lines.feed if lines else None,
                stop=with_cancel(stop, cancel),
                max_control_bytes_per_s=self._parts.settings.tool_limits.max_control_bytes_per_s,
            )
        finally:
            if forget is not None:
                forget()
        if lines is not None:
            lines.flush()
        stdout, stderr, truncated = got.stdout, got.stderr, got.truncated
        exit_code, timed_out = got.exit_code, got.timed_out
        oom = False
        error: str | None = got.cut
        if error is not None:
            # A per-run bound was broken: the box is stopped here, its output so far kept.
            backend.kill(warm.ref)
            stdout, stderr, more = warm.channel.drain_after_kill(cap, stdout, stderr)
            truncated |= more
            exit_code = _KILLED_EXIT
        elif exit_code is not None:
            # The runtime waits for us to hang up, so the container and its cgroup still exist.
            oom = bool(backend.oom_kills(warm.ref))
        elif not timed_out:
            # The runtime ended without reporting (killed, OOM, os._exit): ask the engine.
            try:
                info = backend.wait(warm.ref, max(0.5, deadline - time.monotonic()))
            except NotFoundError:
                info = None
                error = "container_lost"
            if info is None and error is None:
                timed_out = True
            elif info is not None:
                exit_code, oom = info.exit_code, info.oom_killed
        if timed_out:
            oom = bool(backend.oom_kills(warm.ref))
            backend.kill(warm.ref)
            stdout, stderr, more = warm.channel.drain_after_kill(cap, stdout, stderr)
            truncated |= more
            exit_code = _KILLED_EXIT
        limit = self._box.limits.output_bytes
        truncated |= len(stdout) > limit or len(stderr) > limit
        out_text = bounded_text(stdout, limit, tokenizer)
        err_text = bounded_text(stderr, limit, tokenizer)
        raw = {"stdout": (stdout[:limit], out_text), "stderr": (stderr[:limit], err_text)}
        keep = self._parts.settings.output.keep_runs
        return RunResult(
            outputs=save_outputs(
                self._box.workspace, warm.exec_id, raw, keep, everything=error == CANCELLED
            ),
            exec_id=warm.exec_id,
            exit_code=exit_code if exit_code is not None else -1,
            stdout=out_text,
            stderr=err_text,
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
            oom_killed=oom,
            output_truncated=truncated,
            error=error,
        )

    # -- waiting and closing --------------------------------------------------------------

    def ready(self, timeout: float = 30.0) -> bool:
        """Wait until the next container is warm; False if warming is off or did not finish."""
        pending = self._next
        if pending is None:
            return False
        try:
            pending.result(timeout=timeout)
        except (SandboxError, FutureTimeout):
            return False
        return True

    def warm_ready(self) -> bool:
        """True when the next container is started and waiting (no wait)."""
        pending = self._next
        return pending is not None and pending.done() and pending.exception() is None

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until every finished run's container has been removed."""
        end = time.monotonic() + timeout
        while self._cleanups:
            fut = self._cleanups.pop()
            with contextlib.suppress(FutureTimeout):
                fut.result(timeout=max(0.0, end - time.monotonic()))

    def close(self) -> None:
        """Remove the waiting container and wait for the others' removal; later runs are
        refused."""
        self._closed = True  # first: runs waiting for the lock see it when they get it
        with self._lock:
            pending, self._next = self._next, None
            if pending is not None:
                try:
                    self._discard(pending.result(timeout=self._parts.settings.start_timeout_s))
                except FutureTimeout:
                    self._discard_when_up(pending)
                except SandboxError:
                    pass  # it never came up; its labels let the reaper find any remains
            self.settle()

    def _discard_when_up(self, pending: Future[Warm]) -> None:
        """A warm-up nobody waits for any more: remove its container once it is up."""

        def discard(f: Future[Warm]) -> None:
            if not f.cancelled() and f.exception() is None:
                self._removals().submit(self._discard, f.result())

        pending.add_done_callback(discard)

    def _removals(self) -> ThreadPoolExecutor:
        return self._parts.removals


def _raise_if_cancelled(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.cancelled:
        raise RunCancelledError("the run was cancelled before it started")
