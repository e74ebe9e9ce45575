"""Session: one agent's sandbox. A workspace its runs share, the owner's skills, its runs."""

from __future__ import annotations

import contextlib
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from sandbox.analysis import AnalysisFinding, analyze
from sandbox.audit import AuditError
from sandbox.core.admission import Principal, Slot
from sandbox.core.assembly import Parts
from sandbox.core.box import Box
from sandbox.core.cancel import CancelToken
from sandbox.core.commands import checked_argv, command_plan
from sandbox.core.modelview import ModelView
from sandbox.core.runargs import checked_run_args
from sandbox.core.runner import Runner
from sandbox.core.skills import SkillStore
from sandbox.exceptions import InvalidInputError, PolicyViolationError, SessionClosedError
from sandbox.files import SafeDir
from sandbox.models import FileEntry, Limits, MiB, OutputEvent, RunResult
from sandbox.pii.cut import MARGIN, bounded_text
from sandbox.pii.session import session_tokenizer
from sandbox.profiles import Profile
from sandbox.storage import SANDBOX_GID, SANDBOX_UID


class Session:
    """One agent session: a workspace shared by its runs, the owner's skills, and its runs.

    Made by `Orchestrator.session()` / `open_session()`, never directly.
    """

    def __init__(
        self,
        parts: Parts,
        principal: Principal,
        session_id: str,
        profile: Profile,
        limits: Limits,
        tools: tuple[str, ...] | None,
        *,
        surface: str = "embedded",
        ttl_s: float | None = None,
        idle_s: float | None = None,
        on_close: Callable[[Session], None] | None = None,
        warm: bool = True,
    ) -> None:
        self._parts = parts
        self.principal = principal
        self.owner = principal.owner
        self.id = session_id
        self.profile = profile
        self.limits = limits
        self.tools = tools
        self.surface = surface
        self.ttl_s, self.idle_s = ttl_s, idle_s
        self._on_close = on_close
        storage = parts.storage
        self._workspace = storage.create_workspace(
            secrets.token_hex(16), limits.workspace_mb, limits.workspace_inodes
        )
        self.skills = SkillStore(storage, self.owner, limits.skills_mb)
        self.created = self.last_used = time.monotonic()
        self.tokenizer = session_tokenizer(parts.pii, session_id, profile.pii_entities)
        self._files = ModelView(SafeDir(self._workspace, SANDBOX_UID, SANDBOX_GID), self.tokenizer)
        self._state = threading.Lock()
        self._closed = False
        try:
            self._runner = Runner(
                parts,
                Box(
                    self.owner,
                    session_id,
                    limits,
                    profile,
                    self._workspace,
                    storage.skills_dir(self.owner),
                    tools,
                    self.tokenizer,
                ),
                warm,
            )
        except BaseException:
            storage.remove_workspace(self._workspace)
            raise

    # -- runs -----------------------------------------------------------------------------

    def run(
        self,
        code: str,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        on_output: Callable[[str, str], None] | None = None,
        *,
        slot: Slot | None = None,
        cancel: CancelToken | None = None,
    ) -> RunResult:
        """Run Python source in a fresh container and return what it did.

        Timeouts, OOM kills and output floods are reported on the result, not raised.
        `on_output(stream, text)` receives output while the run goes, line by line (PII
        tokenized like the result), from the calling thread. A surface that already waited
        for a run slot hands it over as `slot` (it is released once the run's container is
        gone, or at once if the run is refused); otherwise the run waits for one here.
        Cancelling `cancel` kills the run's container at once: the result then has the
        outcome `cancelled` and the output written until then.

        Raises:
            InvalidInputError: code, timeout or env are malformed or too large.
            PolicyViolationError: the profile's static analysis blocks this code.
            QueueFullError: no run slot is free and the queue is full.
            SessionClosedError: the session is closed.
            BackendError: the engine failed to provide a container.
            RunCancelledError: `cancel` was cancelled before the code was handed over.
        """
        try:
            checked = checked_run_args(code, timeout, env, self.limits.timeout_s)
            mode = self.profile.static_analysis
            findings = analyze(code) if mode != "off" else []
            if findings and mode == "block":
                self._violation(sorted({f.rule for f in findings}))
                raise PolicyViolationError(
                    "refused by static analysis: "
                    + "; ".join(f"line {f.line}: {f.message}" for f in findings),
                    list(findings),
                )
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        result = self._admitted(code, checked, env, on_output, "code", findings, slot, cancel)
        return result.model_copy(update={"findings": findings}) if findings else result

    def run_command(
        self,
        command: list[str] | str,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        *,
        slot: Slot | None = None,
        cancel: CancelToken | None = None,
    ) -> RunResult:
        """Run a command (argv, no shell) in a fresh container, like `run` does code.

        A string is split with shlex and refused if it holds shell syntax (; | & $( ` < >).
        The program must be allowed by the profile (`sandbox.core.commands.command_plan`).

        Raises:
            PolicyViolationError: shell syntax, a program, path or environment the profile
                does not allow, or (static analysis 'block') findings in `python3 -c` code.
            InvalidInputError, QueueFullError, SessionClosedError, BackendError,
                RunCancelledError: as for `run`.
        """
        try:
            argv = checked_argv(command)
            try:
                code, findings = command_plan(argv, env, self.profile)
            except PolicyViolationError as exc:
                rules = {f.rule for f in exc.findings if isinstance(f, AnalysisFinding)}
                self._violation(sorted(rules), command=argv[0][:64])
                raise
            checked = checked_run_args(code, timeout, env, self.limits.timeout_s)
        except BaseException:
            if slot is not None:
                slot.release()
            raise
        result = self._admitted(code, checked, env, None, "command", findings, slot, cancel)
        return result.model_copy(update={"findings": findings}) if findings else result

    def stream(
        self,
        code: str,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        *,
        cancel: CancelToken | None = None,
    ) -> Iterator[OutputEvent | RunResult]:
        """Run like `run`, yielding output events as they happen and the RunResult last.
        Closing the iterator before the result cancels the run.

        Raises:
            The errors of `run`, from the iterator.
        """
        cancel = cancel if cancel is not None else CancelToken()
        events: queue.SimpleQueue[OutputEvent | RunResult | BaseException] = queue.SimpleQueue()

        def on_output(stream: str, text: str) -> None:
            events.put(OutputEvent(stream="stderr" if stream == "stderr" else "stdout", text=text))

        def work() -> None:
            try:
                events.put(self.run(code, timeout, env, on_output, cancel=cancel))
            except BaseException as exc:  # noqa: BLE001 - handed to the iterating thread
                events.put(exc)

        threading.Thread(target=work, name=f"sbx-stream-{self.id[:8]}", daemon=True).start()
        try:
            while True:
                item = events.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, RunResult):
                    return
        finally:
            cancel.cancel()  # a consumer that stops early stops the run; after it, a no-op

    def _admitted(
        self,
        code: str,
        timeout: float,
        env: dict[str, str] | None,
        on_output: Callable[[str, str], None] | None,
        mode: str,
        findings: list[AnalysisFinding],
        slot: Slot | None,
        cancel: CancelToken | None = None,
    ) -> RunResult:
        """Run with a slot held until the run's container is gone."""
        admission = self._parts.admission
        if slot is None:
            slot = admission.acquire(
                self.principal, surface=self.surface, timeout=admission.rules.run_queue_wait_s
            )
        elif not slot.held:
            raise InvalidInputError("that run slot is no longer held")
        run_start: dict[str, object] = {
            "mode": mode,
            "profile": self.profile.name,
            "findings": sorted({f.rule for f in findings}),
            "memory_mb": self.limits.memory_mb,
            "cpus": self.limits.cpus,
            "pids": self.limits.pids,
            "runtime": self.profile.runtime,
        }
        try:
            self._ensure_open()
        except BaseException:
            slot.release()
            raise
        try:
            return self._runner.execute(
                code, timeout, env or {}, on_output, run_start, slot.release, cancel
            )
        finally:
            self.last_used = time.monotonic()

    def _violation(self, rules: list[str], **fields: object) -> None:
        self._parts.audit.record(
            "policy_violation",
            controller=self._parts.settings.controller_id,
            owner=self.owner,
            session=self.id,
            rules=rules,
            **fields,
        )

    def search_tools(
        self, query: str = "", detail: str = "summary", limit: int = 20
    ) -> list[dict[str, Any]]:
        """Find the MCP tools this session may call; detail is 'name', 'summary' or 'schema'."""
        bridge = self._parts.bridge
        return bridge.search_tools(query, detail, limit, self.tools, self.owner) if bridge else []

    def ready(self, timeout: float = 30.0) -> bool:
        """Wait until the next container is warm; False if warming is off or did not finish."""
        return self._runner.ready(timeout)

    def warm_ready(self) -> bool:
        """True when the next container is started and waiting (no wait)."""
        return self._runner.warm_ready()

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until every finished run's container has been removed."""
        self._runner.settle(timeout)

    # -- workspace ------------------------------------------------------------------------

    def upload(self, path: str, data: bytes) -> None:
        """Write a file into /workspace (parents are created).

        Raises:
            UnsafePathError, FileTypeError, QuotaExceededError, SessionClosedError.
        """
        self._ensure_open()
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError("data must be bytes")
        self._files.write(path, bytes(data), self.limits.max_file_mb * MiB)

    def upload_chunks(self, path: str, chunks: Iterable[bytes]) -> None:
        """Like `upload`, from chunks written as they come (a surface streaming a body).

        Raises:
            UnsafePathError, FileTypeError, QuotaExceededError, SessionClosedError.
        """
        self._ensure_open()
        self._files.write(path, chunks, self.limits.max_file_mb * MiB)

    def download(self, path: str) -> bytes:
        """Read a file from /workspace; links, FIFOs and devices are refused.

        Raises:
            UnsafePathError, NotFoundError, FileTypeError, QuotaExceededError, SessionClosedError.
        """
        self._ensure_open()
        return self._files.read(path, self.limits.max_file_mb * MiB)

    def read_text(self, path: str, max_bytes: int = 64 * 1024) -> str:
        """A text preview of a workspace file, for showing to a model: at most `max_bytes`,
        decoded leniently, PII tokenized. Links, FIFOs and devices are refused.

        Raises:
            UnsafePathError, NotFoundError, FileTypeError, QuotaExceededError, SessionClosedError.
        """
        self._ensure_open()
        limit = min(max_bytes, self.limits.max_file_mb * MiB)  # only the preview is read, and
        data = self._files.read(path, limit + MARGIN, prefix=True)  # past it: where to cut
        return bounded_text(data, limit, self.tokenizer)

    @property
    def files(self) -> ModelView:
        """/workspace as a model sees it (core/reading.py reads pages of it for a model)."""
        self._ensure_open()
        return self._files

    def list_files(self, path: str = "") -> list[FileEntry]:
        """List /workspace (or a folder in it) recursively, without following links."""
        self._ensure_open()
        return self._files.listing(path)

    def delete_file(self, path: str) -> None:
        self._ensure_open()
        self._files.delete(path)

    # -- skills (per owner, read-only inside the sandbox) ---------------------------------

    def save_skill(self, path: str, data: bytes) -> None:
        """Save a file into the owner's /skills, which persists across sessions.

        Raises:
            UnsafePathError, FileTypeError, QuotaExceededError, SessionClosedError.
        """
        self._ensure_open()
        self.skills.save(path, data)

    def read_skill(self, path: str) -> bytes:
        self._ensure_open()
        return self.skills.read(path)

    def list_skills(self) -> list[FileEntry]:
        self._ensure_open()
        return self.skills.list()

    def delete_skill(self, path: str) -> None:
        self._ensure_open()
        self.skills.delete(path)

    # -- lifecycle ------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._closed:
            raise SessionClosedError(f"session {self.id} is closed")
        self.last_used = time.monotonic()

    def expired(self, now: float) -> bool:
        if self.ttl_s is not None and now - self.created > self.ttl_s:
            return True
        return (
            self.idle_s is not None and now - self.last_used > self.idle_s and not self._runner.busy
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Remove the session's containers and its workspace. Idempotent."""
        with self._state:
            if self._closed:
                return
            self._closed = True
        try:
            self._runner.close()
            self._parts.storage.remove_workspace(self._workspace)
            if self.tokenizer is not None:
                self.tokenizer.destroy()  # crypto-shredding: the vault's key is gone
            with contextlib.suppress(AuditError):  # closing must not fail for want of a record
                self._parts.audit.record(
                    "session_close",
                    controller=self._parts.settings.controller_id,
                    owner=self.owner,
                    session=self.id,
                )
        finally:
            if self._on_close is not None:
                self._on_close(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
