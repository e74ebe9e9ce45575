"""Orchestrator and Session: the one core every surface (HTTP, MCP, client, CLI) calls.

Every run gets a container of its own. To keep that fast, each session keeps its *next*
container created, started and dialled in to its run socket, waiting for code; a run hands
it the code, reads the result, and the container is removed in the background while the
one after it warms up. A warm container holds no code until its run begins.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import logging
import os
import re
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sandbox import policy
from sandbox.analysis import AnalysisFinding, analyze
from sandbox.audit import AuditError, AuditKeys, AuditLog
from sandbox.backends.base import (
    LABEL_CONTROLLER,
    LABEL_DEADLINE,
    LABEL_MANAGED,
    LABEL_SESSION,
    Backend,
    ContainerRef,
)
from sandbox.bridge.config import load_config
from sandbox.bridge.endpoint import ToolBridge, allowed
from sandbox.channel import EGRESS_SOCKET, CallHandler, RunChannel, response_frame
from sandbox.egress import EgressContext, EgressProxy
from sandbox.exceptions import (
    ContainerStartError,
    ControllerBusyError,
    InvalidInputError,
    NotFoundError,
    PolicyViolationError,
    SandboxError,
    SessionClosedError,
)
from sandbox.files import SafeDir
from sandbox.images import ensure_image
from sandbox.models import FileEntry, Limits, MiB, RunResult, validate_id
from sandbox.pii import Detector, MasterKeys, Tokenizer, default_recognizers
from sandbox.profiles import Profile, load_profiles, pick
from sandbox.secrets import SecretStore, master_key
from sandbox.settings import PiiSettings, Settings
from sandbox.storage import SANDBOX_GID, SANDBOX_UID, Storage

logger = logging.getLogger(__name__)

MAX_CODE_BYTES = 1 * MiB
MAX_ENV_BYTES = 64 * 1024
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_KILLED_EXIT = 137  # 128 + SIGKILL, as a shell and Docker report it
# A warm container that waits longer than this is past its deadline label and may be reaped.
_MAX_IDLE_S = 6 * 3600


@dataclass
class _Warm:
    exec_id: str
    ref: ContainerRef
    channel: RunChannel
    egress: EgressProxy | None = None


class Orchestrator:
    """Owns the backend, the data directory and every live session.

    Raises (at construction):
        ControllerBusyError: another live controller uses the same data directory.
        BackendUnavailableError: no container engine answers.
        ImageBuildError: the sandbox image is missing and could not be built.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backend: Backend | None = None,
        mcp_config: Path | str | dict[str, object] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        if backend is None:
            from sandbox.backends.docker import DockerBackend, DockerBackendConfig

            backend = DockerBackend(DockerBackendConfig(base_url=self.settings.docker_host))
        self.backend: Backend = backend
        self._storage = Storage(self.settings.data_dir, self.settings.workspace_backing)
        self._lock_file = _lock_data_dir(self.settings.data_dir)
        self._sessions: dict[str, Session] = {}
        self._guard = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sbx")
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._aloop_lock = threading.Lock()
        self.audit = AuditLog(
            self.settings.audit_log or self.settings.data_dir / "audit.log",
            AuditKeys.load_or_create(
                self.settings.audit_keys or self.settings.data_dir / "audit-keys.json"
            ),
        )
        self.bridge: ToolBridge | None = None
        self.pii: tuple[MasterKeys, Detector] | None = None
        try:
            self.backend.ping()
            reaped = self._reap_leftovers()
            if reaped:
                logger.info("removed %d leftovers of a previous controller", reaped)
            # Every accepted run ends in exactly one terminal record, even across a crash.
            for start in self.audit.unfinished_runs(self.settings.controller_id):
                self.audit.record(
                    "run_end",
                    controller=self.settings.controller_id,
                    owner=start.get("owner"),
                    session=start.get("session"),
                    exec_id=start["exec_id"],
                    outcome="interrupted",
                    reason="controller_restart",
                )
            self.image = self.settings.image or ensure_image(self.backend, self.settings.base_image)
            if not self.backend.image_exists(self.image):
                raise NotFoundError(f"sandbox image {self.image!r} does not exist")
            self.pii = _pii_setup(self.settings.pii)
            self.profiles = load_profiles(self.settings.profiles)
            self.profiles["default"] = self.profiles["default"].model_copy(
                update={"limits": self.settings.limits, "runtime": self.settings.runtime}
            )
            source = mcp_config if mcp_config is not None else self.settings.mcp_config
            if source is not None:
                secret = self.settings.secret_key
                store = SecretStore(
                    self.settings.data_dir / "secrets.json",
                    master_key(
                        secret.get_secret_value() if secret else None, self.settings.data_dir
                    ),
                )
                self.bridge = ToolBridge(
                    load_config(source),
                    self.settings.data_dir / "api",
                    self.audit,
                    self.settings.tool_limits,
                    resolve=store.resolve,
                )
        except BaseException:
            self._pool.shutdown(wait=False)
            self.audit.close()
            self._lock_file.close()
            raise

    # -- sessions -------------------------------------------------------------------------

    def session(
        self,
        owner: str,
        session_id: str | None = None,
        limits: Limits | None = None,
        tools: Iterable[str] | None = None,
        ttl_s: float | None = None,
        idle_s: float | None = None,
        profile: str = "default",
        allowed_profiles: tuple[str, ...] | None = None,
    ) -> Session:
        """Open a session: a fresh workspace, the owner's skills, a warm container if enabled.

        `tools` limits which MCP tools its code may call ('crm.get_customer', 'crm.*');
        None allows every configured tool. `ttl_s` and `idle_s` let `expire_sessions()`
        close it after that long in total, or that long unused. `profile` names the policy
        profile (limits, tools, runtime, static analysis, commands); `allowed_profiles`
        restricts which the caller may pick.

        Raises:
            InvalidInputError: a bad owner or session id, or that id is already open.
            SessionClosedError: the orchestrator is closed.
        """
        validate_id(owner, "owner")
        sid = validate_id(session_id, "session_id") if session_id else secrets.token_hex(16)
        chosen = pick(self.profiles, profile, allowed_profiles)
        if chosen.tools is not None:
            # A session may narrow its profile's tools, never widen them.
            tools = (
                chosen.tools
                if tools is None
                else tuple(t for t in tools if "." in t and allowed(chosen.tools, *t.split(".", 1)))
            )
        with self._guard:
            if self._closed:
                raise SessionClosedError("orchestrator is closed")
            if sid in self._sessions:
                raise InvalidInputError(f"session {sid!r} is already open")
            session = Session(
                self,
                owner,
                sid,
                limits or chosen.limits,
                tuple(tools) if tools is not None else None,
            )
            session.profile = chosen
            session.ttl_s, session.idle_s = ttl_s, idle_s
            self._sessions[sid] = session
        self.audit.record(
            "session_open",
            controller=self.settings.controller_id,
            owner=owner,
            session=sid,
            profile=chosen.name,
            tools=list(tools) if tools is not None else None,
        )
        return session

    def get_session(self, session_id: str) -> Session:
        """Raises NotFoundError when no open session has that id."""
        with self._guard:
            try:
                return self._sessions[session_id]
            except KeyError:
                raise NotFoundError(f"no open session {session_id!r:.80}") from None

    def search_tools(
        self, query: str = "", detail: str = "summary", limit: int = 20
    ) -> list[dict[str, Any]]:
        """Find configured MCP tools by keywords; detail is 'name', 'summary' or 'schema'."""
        if self.bridge is None:
            return []
        return self.bridge.search_tools(query, detail, limit)

    def _async_loop(self) -> asyncio.AbstractEventLoop:
        """An event loop thread for the controller's async services (egress proxies)."""
        with self._aloop_lock:
            if self._aloop is None:
                self._aloop = asyncio.new_event_loop()
                threading.Thread(
                    target=self._aloop.run_forever, name="sbx-async", daemon=True
                ).start()
            return self._aloop

    def expire_sessions(self, now: float | None = None) -> list[str]:
        """Close sessions past their TTL or idle time; returns their ids."""
        now = time.monotonic() if now is None else now
        expired = [s for s in self.sessions() if s.expired(now)]
        for s in expired:
            s.close()
        return [s.id for s in expired]

    def skills(self, owner: str) -> SkillStore:
        """The owner's skills, without opening a session.

        Raises:
            InvalidInputError: a bad owner id.
        """
        validate_id(owner, "owner")
        return SkillStore(self._storage, owner, self.settings.limits.skills_mb)

    def sessions(self) -> list[Session]:
        with self._guard:
            return list(self._sessions.values())

    def _forget(self, session: Session) -> None:
        with self._guard:
            self._sessions.pop(session.id, None)

    # -- garbage --------------------------------------------------------------------------

    def _reap_leftovers(self) -> int:
        """Remove everything a dead controller with our id and data dir left behind."""
        mine = {LABEL_MANAGED: "1", LABEL_CONTROLLER: self.settings.controller_id}
        found = self.backend.list_managed(mine)
        for c in found:
            self.backend.remove(c.ref)
        return len(found) + self._storage.reap()

    def gc(self, now: float | None = None) -> int:
        """Remove containers past their deadline label, from any controller, and our strays.

        Returns how many containers were removed. Containers without our labels are never touched.
        """
        now = time.time() if now is None else now
        live = {s.id for s in self.sessions()}
        removed = 0
        for c in self.backend.list_managed({LABEL_MANAGED: "1"}):
            ours_orphaned = (
                c.labels.get(LABEL_CONTROLLER) == self.settings.controller_id
                and c.labels.get(LABEL_SESSION) not in live
            )
            if ours_orphaned or _expired(c.labels, now):
                self.backend.remove(c.ref)
                removed += 1
        return removed

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close every session (removing its containers and workspace), then release the engine."""
        with self._guard:
            if self._closed:
                return
            self._closed = True
        for session in self.sessions():
            try:
                session.close()
            except SandboxError:
                logger.exception("closing session %s", session.id)
        self._pool.shutdown(wait=True)
        if self._aloop is not None:
            self._aloop.call_soon_threadsafe(self._aloop.stop)
        if self.bridge is not None:
            self.bridge.close()
        self.backend.close()
        self.audit.close()
        self._lock_file.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SkillStore:
    """One owner's skills folder: mounted read-only at /skills in their sandboxes, written only
    here, within the owner's quota."""

    def __init__(self, storage: Storage, owner: str, quota_mb: int) -> None:
        self._storage, self.owner, self._quota_mb = storage, owner, quota_mb
        self._dir = SafeDir(storage.skills_dir(owner))

    def save(self, path: str, data: bytes) -> None:
        """Raises UnsafePathError, FileTypeError, QuotaExceededError."""
        self._storage.check_skills_room(self.owner, len(data), self._quota_mb)
        self._dir.write(path, bytes(data), self._quota_mb * MiB)

    def read(self, path: str) -> bytes:
        """Raises UnsafePathError, NotFoundError, FileTypeError."""
        return self._dir.read(path, self._quota_mb * MiB)

    def list(self) -> list[FileEntry]:
        return self._dir.listing()

    def delete(self, path: str) -> None:
        """Raises UnsafePathError, NotFoundError, FileTypeError."""
        self._dir.delete(path)


class Session:
    """One agent session: a workspace shared by its runs, the owner's skills, and its runs."""

    def __init__(
        self,
        orc: Orchestrator,
        owner: str,
        session_id: str,
        limits: Limits,
        tools: tuple[str, ...] | None,
    ) -> None:
        self._orc = orc
        self.owner = owner
        self.id = session_id
        self.limits = limits
        self.tools = tools
        storage = orc._storage
        self._workspace = storage.create_workspace(
            secrets.token_hex(16), limits.workspace_mb, limits.workspace_inodes
        )
        self._skills = storage.skills_dir(owner)
        self.skills = SkillStore(storage, owner, limits.skills_mb)
        self.created = self.last_used = time.monotonic()
        self.ttl_s: float | None = None
        self.idle_s: float | None = None
        self.profile: Profile = orc.profiles["default"]
        self.tokenizer: Tokenizer | None = (
            Tokenizer.for_session(orc.pii[0], session_id, orc.pii[1]) if orc.pii else None
        )
        self._files = SafeDir(self._workspace, SANDBOX_UID, SANDBOX_GID)
        self._run_lock = threading.Lock()
        self._state = threading.Lock()
        self._closed = False
        self._next: Future[_Warm] | None = None
        self._cleanups: list[Future[None]] = []
        if orc.settings.warm:
            self._next = orc._pool.submit(self._prepare)

    # -- runs -----------------------------------------------------------------------------

    def run(
        self,
        code: str,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        on_output: Callable[[str, str], None] | None = None,
    ) -> RunResult:
        """Run Python source in a fresh container and return what it did.

        Timeouts, OOM kills and output floods are reported on the result, not raised.
        `on_output(stream, text)` receives output while the run goes, line by line (PII
        tokenized like the result), from the calling thread.

        Raises:
            InvalidInputError: code, timeout or env are malformed or too large.
            PolicyViolationError: the profile's static analysis blocks this code.
            SessionClosedError: the session is closed.
            BackendError: the engine failed to provide a container.
        """
        mode = self.profile.static_analysis
        findings = analyze(code) if mode != "off" and isinstance(code, str) else []
        if findings and mode == "block":
            self._orc.audit.record(
                "policy_violation",
                controller=self._orc.settings.controller_id,
                owner=self.owner,
                session=self.id,
                rules=sorted({f.rule for f in findings}),
            )
            raise PolicyViolationError(
                "refused by static analysis: "
                + "; ".join(f"line {f.line}: {f.message}" for f in findings),
                list(findings),
            )
        return self._execute(code, timeout, env, on_output, "code", findings)

    def run_command(
        self,
        command: list[str] | str,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> RunResult:
        """Run a command (argv, no shell) in a fresh container, like `run` does code.

        A string is split with shlex and refused if it holds shell syntax (; | & $( ` < >).
        The base command must be on the profile's allowlist.

        Raises:
            PolicyViolationError: shell syntax, or a command the profile does not allow.
            InvalidInputError, SessionClosedError, BackendError: as for `run`.
        """
        argv = _argv(command)
        base = argv[0].rsplit("/", 1)[-1]
        if base not in self.profile.commands:
            self._orc.audit.record(
                "policy_violation",
                controller=self._orc.settings.controller_id,
                owner=self.owner,
                session=self.id,
                rules=["command_not_allowed"],
                command=base[:64],
            )
            raise PolicyViolationError(
                f"command {base!r:.64} is not allowed in profile {self.profile.name!r}"
            )
        code = (
            "import subprocess, sys\n"
            f"r = subprocess.run({argv!r}, shell=False)\n"
            "sys.exit(r.returncode if r.returncode >= 0 else 128 - r.returncode)\n"
        )
        return self._execute(code, timeout, env, None, "command", [])

    def _execute(
        self,
        code: str,
        timeout: float | None,
        env: dict[str, str] | None,
        on_output: Callable[[str, str], None] | None,
        mode: str,
        findings: list[AnalysisFinding],
    ) -> RunResult:
        timeout = self._check_run_args(code, timeout, env)
        with self._run_lock:
            self._ensure_open()
            warm = self._take_warm()
            bridge = self._orc.bridge
            unended: str | None = None  # a run_start with no run_end yet
            try:
                for attempt in (1, 2):
                    # Fail closed: no code runs unless its start is on the record.
                    self._audit(
                        "run_start",
                        warm.exec_id,
                        timeout=timeout,
                        mode=mode,
                        profile=self.profile.name,
                        findings=sorted({f.rule for f in findings}),
                        memory_mb=self.limits.memory_mb,
                        cpus=self.limits.cpus,
                        pids=self.limits.pids,
                        runtime=self.profile.runtime,
                    )
                    unended = warm.exec_id
                    # The token exists from here on; the waiting container never held one.
                    token = bridge.tokens.mint(self.id, warm.exec_id, timeout + 5) if bridge else ""
                    started = time.monotonic()
                    try:
                        warm.channel.deliver(code, env or {}, policy.WORKSPACE, token)
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
                result = self._finish(warm, started, started + timeout, on_output)
                if findings:
                    result = result.model_copy(update={"findings": findings})
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
                self.last_used = time.monotonic()
                if bridge:
                    bridge.tokens.revoke(warm.exec_id)
                self._cleanups.append(self._orc._pool.submit(self._discard, warm))

    def _audit(self, event: str, exec_id: str, **fields: object) -> None:
        self._orc.audit.record(
            event,
            controller=self._orc.settings.controller_id,
            owner=self.owner,
            session=self.id,
            exec_id=exec_id,
            **fields,
        )

    def _check_run_args(
        self, code: str, timeout: float | None, env: dict[str, str] | None
    ) -> float:
        if not isinstance(code, str):
            raise InvalidInputError("code must be a string of Python source")
        if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
            raise InvalidInputError(f"code is larger than {MAX_CODE_BYTES} bytes")
        if "\x00" in code:
            raise InvalidInputError("code contains a NUL byte")
        limit = self.limits.timeout_s
        if timeout is None:
            timeout = limit
        if not isinstance(timeout, int | float) or not 0 < timeout <= limit:
            raise InvalidInputError(f"timeout must be in (0, {limit}] seconds, got {timeout!r}")
        size = 0
        for key, value in (env or {}).items():
            if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
                raise InvalidInputError(f"bad environment variable name {key!r:.80}")
            if not isinstance(value, str) or "\x00" in value:
                raise InvalidInputError(f"environment variable {key} must be a string without NUL")
            size += len(key) + len(value.encode("utf-8", "surrogatepass")) + 2
        if size > MAX_ENV_BYTES:
            raise InvalidInputError(f"environment is larger than {MAX_ENV_BYTES} bytes")
        return float(timeout)

    def _take_warm(self) -> _Warm:
        """The waiting container if there is one (or one on its way), else a cold start;
        and the next one starts warming straight away."""
        orc = self._orc
        pending, self._next = self._next, None
        warm: _Warm | None = None
        if pending is not None:
            try:
                warm = pending.result(timeout=orc.settings.start_timeout_s)
            except (SandboxError, FutureTimeout) as exc:
                logger.warning("warm container failed (%s); starting one now", exc)
        if warm is None:
            warm = self._prepare()
        if orc.settings.warm:
            self._next = orc._pool.submit(self._prepare)
        return warm

    def _prepare(self) -> _Warm:
        orc = self._orc
        exec_id = secrets.token_hex(16)
        channel = RunChannel(orc._storage.runs, SANDBOX_UID, SANDBOX_GID)
        labels = policy.labels_for(
            orc.settings.controller_id,
            self.owner,
            self.id,
            exec_id,
            _MAX_IDLE_S + self.limits.timeout_s,
        )
        spec = policy.launch_spec(
            image=orc.image,
            limits=self.limits,
            runtime=self.profile.runtime,
            workspace=self._workspace,
            skills=self._skills,
            channel_dir=channel.dir,
            labels=labels,
            servers=orc.bridge.servers_dir if orc.bridge else None,
        )
        ref: ContainerRef | None = None
        egress: EgressProxy | None = None
        try:
            if self.profile.network == "allowlist":
                egress = EgressProxy(
                    EgressContext(
                        self.owner,
                        self.id,
                        exec_id,
                        frozenset(self.profile.egress),
                        self.profile.egress_private,
                    ),
                    orc.audit,
                )
                loop = orc._async_loop()
                asyncio.run_coroutine_threadsafe(
                    egress.start(channel.dir / EGRESS_SOCKET), loop
                ).result(10)
            ref = orc.backend.create(spec)
            orc.backend.start(ref)
            channel.accept_runtime(time.monotonic() + orc.settings.start_timeout_s)
        except BaseException:
            self._stop_egress(egress)
            channel.close()
            if ref is not None:
                orc.backend.remove(ref)
            raise
        return _Warm(exec_id, ref, channel, egress)

    def _stop_egress(self, egress: EgressProxy | None) -> None:
        if egress is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(egress.stop(), self._orc._async_loop()).result(10)

    def _finish(
        self,
        warm: _Warm,
        started: float,
        deadline: float,
        on_output: Callable[[str, str], None] | None,
    ) -> RunResult:
        backend = self._orc.backend
        cap = self.limits.output_bytes
        on_call, max_call_bytes = self._call_handler(warm)
        lines = _LineStream(on_output, self.tokenizer) if on_output is not None else None
        got = warm.channel.collect(
            deadline, cap, on_call, max_call_bytes, lines.feed if lines else None
        )
        if lines is not None:
            lines.flush()
        stdout, stderr, truncated = got.stdout, got.stderr, got.truncated
        exit_code = got.exit_code
        timed_out = got.timed_out
        oom = False
        error: str | None = None
        if exit_code is not None:
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
        out_text, err_text = stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")
        if self.tokenizer is not None:
            # Output goes toward the model: PII the code printed, however it got it, is tokenized.
            out_text, err_text = (
                self.tokenizer.tokenize(out_text),
                self.tokenizer.tokenize(err_text),
            )
        return RunResult(
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

    def _call_handler(self, warm: _Warm) -> tuple[CallHandler, int]:
        bridge = self._orc.bridge
        if bridge is None:
            return _no_tools, 64 * 1024
        ctx = bridge.context(self.owner, self.id, warm.exec_id, self.tools, self.tokenizer)

        def on_call(body: bytes, reply: Callable[[bytes], None]) -> None:
            bridge.submit(ctx, body, reply)

        return on_call, bridge.limits.max_args_bytes

    def search_tools(
        self, query: str = "", detail: str = "summary", limit: int = 20
    ) -> list[dict[str, Any]]:
        """Find the MCP tools this session may call; detail is 'name', 'summary' or 'schema'."""
        bridge = self._orc.bridge
        return bridge.search_tools(query, detail, limit, self.tools) if bridge else []

    def _discard(self, warm: _Warm) -> None:
        self._stop_egress(warm.egress)
        warm.channel.close()
        try:
            self._orc.backend.remove(warm.ref)
        except SandboxError:
            # The reaper (next start, `sandbox gc`) finds it by its labels.
            logger.exception("removing container of run %s", warm.exec_id)

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
        data = self._files.read(path, self.limits.max_file_mb * MiB)[:max_bytes]
        text = data.decode("utf-8", "replace")
        return self.tokenizer.tokenize(text) if self.tokenizer is not None else text

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
            self.idle_s is not None
            and now - self.last_used > self.idle_s
            and not self._run_lock.locked()
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
        with self._run_lock:
            pending, self._next = self._next, None
            if pending is not None:
                # If it never came up, its labels let the reaper find any remains.
                with contextlib.suppress(SandboxError, FutureTimeout):
                    self._discard(pending.result(timeout=self._orc.settings.start_timeout_s))
            self.settle()
            self._orc._storage.remove_workspace(self._workspace)
            if self.tokenizer is not None:
                self.tokenizer.destroy()  # crypto-shredding: the vault's key is gone
        with contextlib.suppress(AuditError):  # closing must not fail for want of a record
            self._orc.audit.record(
                "session_close",
                controller=self._orc.settings.controller_id,
                owner=self.owner,
                session=self.id,
            )
        self._orc._forget(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _LineStream:
    """Turns output chunks into whole lines for a streaming caller, tokenized per line so a
    token never straddles two chunks. A line longer than 8 KiB is passed on in pieces."""

    _MAX_HOLD = 8192

    def __init__(self, sink: Callable[[str, str], None], tokenizer: Tokenizer | None) -> None:
        self._sink, self._tok = sink, tokenizer
        self._decoders = {
            s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")
        }
        self._held = {"stdout": "", "stderr": ""}

    def feed(self, stream: str, data: bytes) -> None:
        text = self._held[stream] + self._decoders[stream].decode(data)
        cut = text.rfind("\n") + 1
        if cut == 0 and len(text) > self._MAX_HOLD:
            cut = len(text)
        self._held[stream] = text[cut:]
        if cut:
            self._emit(stream, text[:cut])

    def flush(self) -> None:
        for stream in ("stdout", "stderr"):
            rest = self._held[stream] + self._decoders[stream].decode(b"", final=True)
            self._held[stream] = ""
            if rest:
                self._emit(stream, rest)

    def _emit(self, stream: str, text: str) -> None:
        self._sink(stream, self._tok.tokenize(text) if self._tok is not None else text)


def _pii_setup(cfg: PiiSettings) -> tuple[MasterKeys, Detector] | None:
    if not cfg.enabled:
        return None
    secret = cfg.secret.get_secret_value().encode() if cfg.secret else os.urandom(32)
    keys = {kid: s.get_secret_value().encode() for kid, s in cfg.previous_secrets.items()}
    keys[cfg.key_id] = secret
    recognizers = default_recognizers(cfg.phone_region)
    extra = []
    if cfg.presidio_entities:
        from sandbox.pii.presidio import presidio_detector

        extra.append(presidio_detector(cfg.presidio_entities, cfg.presidio_model))
    return MasterKeys(keys, cfg.key_id), Detector(recognizers, entities=cfg.entities, extra=extra)


_SHELL_SYNTAX = re.compile(r"[;|&`<>\n]|\$\(")


def _argv(command: list[str] | str) -> list[str]:
    """A checked argv. Raises PolicyViolationError (shell syntax) or InvalidInputError."""
    if isinstance(command, str):
        if _SHELL_SYNTAX.search(command):
            raise PolicyViolationError(
                "shell syntax is not allowed in a command (no ; | & $( ` < > or newlines)"
            )
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise InvalidInputError(f"cannot split the command: {exc}") from exc
    elif isinstance(command, list) and all(isinstance(a, str) for a in command):
        argv = list(command)
    else:
        raise InvalidInputError("a command is a list of strings or a string")
    if not argv or not argv[0] or any("\x00" in a for a in argv) or len(argv) > 1024:
        raise InvalidInputError(
            "a command needs a program name, at most 1024 arguments and no NUL bytes"
        )
    return argv


def _no_tools(body: bytes, reply: Callable[[bytes], None]) -> None:
    reply(
        response_frame(
            None,
            {
                "ok": False,
                "error": {
                    "code": "unavailable",
                    "message": "no MCP servers are configured for this sandbox",
                },
            },
        )
    )


def collect_garbage(settings: Settings, backend: Backend | None = None) -> int:
    """Remove containers past their deadline label without taking over the data directory."""
    if backend is None:
        from sandbox.backends.docker import DockerBackend, DockerBackendConfig

        backend = DockerBackend(DockerBackendConfig(base_url=settings.docker_host))
    now = time.time()
    expired = [c for c in backend.list_managed({LABEL_MANAGED: "1"}) if _expired(c.labels, now)]
    for c in expired:
        backend.remove(c.ref)
    return len(expired)


def _expired(labels: Mapping[str, str], now: float) -> bool:
    """Past its deadline label. No deadline, or one we cannot read, is never expired."""
    try:
        return int(labels[LABEL_DEADLINE]) < now
    except (KeyError, ValueError):
        return False


def _lock_data_dir(data_dir: Path) -> IO[bytes]:
    """Hold an exclusive lock on the data dir for the controller's lifetime.

    Raises:
        ControllerBusyError: another live controller holds it.
    """
    data_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
    handle = open(data_dir / "controller.lock", "ab")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ControllerBusyError(f"another controller is using {data_dir}") from None
    os.set_inheritable(handle.fileno(), False)
    return handle
