"""Orchestrator: owns a controller's parts and its open sessions; every surface calls it."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from sandbox.backends.base import (
    LABEL_CONTROLLER,
    LABEL_DEADLINE,
    LABEL_MANAGED,
    LABEL_SESSION,
    Backend,
)
from sandbox.bridge.endpoint import allowed
from sandbox.core.admission import Principal
from sandbox.core.assembly import McpSource, assemble
from sandbox.core.registry import SessionRegistry
from sandbox.core.session import Session
from sandbox.core.skills import SkillStore
from sandbox.exceptions import InvalidInputError, SandboxError, TooManySessionsError
from sandbox.keys import KeyStore
from sandbox.models import Limits, validate_id
from sandbox.profiles import pick
from sandbox.settings import Settings

logger = logging.getLogger(__name__)


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
        keys: KeyStore | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        source: McpSource | None = mcp_config
        parts = assemble(self.settings, backend=backend, mcp_config=source, keys=keys)
        self._parts = parts
        self.backend, self.audit, self.metrics = parts.backend, parts.audit, parts.metrics
        self.admission, self.bridge, self.pii = parts.admission, parts.bridge, parts.pii
        self.approvals = parts.approvals
        """Tool calls of this controller's runs waiting for a person's decision."""
        self.image = parts.image
        self.profiles = parts.profiles or {}
        rules = self.settings.api
        self._registry: SessionRegistry[Session] = SessionRegistry(
            rules.sessions_per_owner, rules.sessions_total
        )
        try:
            self._recover()
        except BaseException:
            parts.close()
            raise

    def _recover(self) -> None:
        """Clear what a dead controller with our id and data dir left behind, and give every
        run it started exactly one terminal record."""
        mine = {LABEL_MANAGED: "1", LABEL_CONTROLLER: self.settings.controller_id}
        found = self.backend.list_managed(mine)
        for c in found:
            self.backend.remove(c.ref)
        reaped = len(found) + self._parts.storage.reap()
        if reaped:
            logger.info("removed %d leftovers of a previous controller", reaped)
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
            NotFoundError: an unknown profile, or one outside `allowed_profiles`.
            TooManySessionsError: the owner or the controller is at its session cap.
            SessionClosedError: the orchestrator is closed.
        """
        validate_id(owner, "owner")
        return self.open_session(
            self.admission.local(owner, allowed_profiles),
            surface="embedded",
            profile=profile,
            tools=tools,
            ttl_s=ttl_s,
            idle_s=idle_s,
            session_id=session_id,
            limits=limits,
        )

    def open_session(
        self,
        principal: Principal,
        *,
        surface: str,
        profile: str | None = None,
        tools: Iterable[str] | None = None,
        ttl_s: float | None = None,
        idle_s: float | None = None,
        session_id: str | None = None,
        limits: Limits | None = None,
        warm: bool = True,
    ) -> Session:
        """Open a session for a principal, within its profiles and the session caps. With
        `warm` off no container is started before its first run (a session for one call).

        Raises:
            ProfileNotAllowedError: the principal may not use that profile.
            NotFoundError: no such profile.
            TooManySessionsError: the owner or the controller is at its session cap.
            InvalidInputError, SessionClosedError: as for `session`.
        """
        sid = validate_id(session_id, "session_id") if session_id else secrets.token_hex(16)
        tools = checked_tools(tools)
        name = self.admission.profile_for(principal, profile, surface=surface)
        chosen = pick(self.profiles, name)
        if chosen.tools is not None:
            # A session may narrow its profile's tools, never widen them.
            tools = (
                chosen.tools
                if tools is None
                else tuple(t for t in tools if allowed(chosen.tools, *t.split(".", 1)))
            )
        tool_list = tuple(tools) if tools is not None else None
        try:
            self._registry.reserve(principal.owner, sid)
        except TooManySessionsError:
            self.admission.refused(principal, surface, "too_many_sessions")
            raise
        try:
            session = Session(
                self._parts,
                principal,
                sid,
                chosen,
                limits or chosen.limits,
                tool_list,
                surface=surface,
                ttl_s=ttl_s,
                idle_s=idle_s,
                on_close=self._registry.remove,
                warm=warm,
            )
        except BaseException:
            self._registry.cancel(sid)
            raise
        self._registry.fill(session)
        self.audit.record(
            "session_open",
            controller=self.settings.controller_id,
            owner=principal.owner,
            session=sid,
            surface=surface,
            profile=chosen.name,
            tools=list(tool_list) if tool_list is not None else None,
        )
        return session

    def get_session(self, session_id: str) -> Session:
        """Raises NotFoundError when no open session has that id."""
        return self._registry.get(session_id)

    def owned_session(self, owner: str, session_id: str) -> Session:
        """The owner's open session; another owner's is reported as missing.

        Raises:
            NotFoundError: no such open session for this owner.
        """
        return self._registry.owned(owner, session_id)

    def sessions(self, owner: str | None = None) -> list[Session]:
        return self._registry.all(owner)

    def search_tools(
        self,
        query: str = "",
        detail: str = "summary",
        limit: int = 20,
        *,
        principal: Principal | None = None,
        profile: str | None = None,
        surface: str = "embedded",
    ) -> list[dict[str, Any]]:
        """Find configured MCP tools by keywords; detail is 'name', 'summary' or 'schema'.

        With a `principal`, only tools their sessions may call: those of `profile`, or of the
        profile their sessions get when they name none, and their owner's own servers. Without
        one, every tool of the deployment's servers.

        Raises:
            ProfileNotAllowedError: the principal may not use that profile (audited).
            NotFoundError: no such profile.
            InvalidInputError: detail is not name, summary or schema.
        """
        tools: tuple[str, ...] | None = None
        if principal is not None:
            name = self.admission.profile_for(principal, profile, surface=surface)
            tools = pick(self.profiles, name).tools
        if self.bridge is None:
            return []
        owner = principal.owner if principal is not None else None
        return self.bridge.search_tools(query, detail, limit, tools, owner=owner)

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
        return SkillStore(self._parts.storage, owner, self.settings.limits.skills_mb)

    def flush_audit(self, timeout: float = 5.0) -> None:
        """Wait until every audit record queued so far (refusals, tool calls, egress) is on
        the trail; they are written off the hot paths, within about a second."""
        self.admission.flush(timeout)
        if self.bridge is not None:
            self.bridge.records.flush(timeout)
        self._parts.records.flush(timeout)

    # -- garbage --------------------------------------------------------------------------

    def gc(self, now: float | None = None) -> int:
        """Remove containers past their deadline label, from any controller, and our strays
        (a box no open session owns) and boxes whose removal failed before (the engine under
        load). `sandbox serve` runs it every minute.

        Returns how many containers were removed. Containers without our labels are never touched.
        """
        now = time.time() if now is None else now
        removed = self._parts.strays.remove_all(self.backend)
        live = self._registry.ids()  # a session being opened is warming its first box
        for c in self.backend.list_managed({LABEL_MANAGED: "1"}):
            ours_orphaned = (
                c.labels.get(LABEL_CONTROLLER) == self.settings.controller_id
                and c.labels.get(LABEL_SESSION) not in live
            )
            if ours_orphaned or expired_label(c.labels, now):
                self.backend.remove(c.ref)
                removed += 1
        return removed

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close every session (removing its containers and workspace), then release the engine."""
        if not self._registry.close():
            return
        for session in self.sessions():
            try:
                session.close()
            except SandboxError:
                logger.exception("closing session %s", session.id)
        self._parts.close()

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_TOOL_PATTERN = re.compile(r"[A-Za-z0-9_*-]{1,64}\.[A-Za-z0-9_*.-]{1,128}")
MAX_TOOL_PATTERNS = 256


def checked_tools(tools: Iterable[str] | None) -> tuple[str, ...] | None:
    """A session's tool allowlist: at most 256 `server.tool` patterns (`*` wildcards).

    Raises:
        InvalidInputError: not strings of that shape, or too many.
    """
    if tools is None:
        return None
    if isinstance(tools, str | bytes):
        raise InvalidInputError("tools is a list of 'server.tool' patterns")
    out: list[str] = []
    for t in tools:
        if len(out) >= MAX_TOOL_PATTERNS:
            raise InvalidInputError(f"at most {MAX_TOOL_PATTERNS} tool patterns")
        if not isinstance(t, str) or not _TOOL_PATTERN.fullmatch(t):
            shown = repr(t)[:80] if isinstance(t, str) else type(t).__name__
            raise InvalidInputError(f"bad tool pattern {shown}: expected 'server.tool'")
        out.append(t)
    return tuple(out)


def collect_garbage(settings: Settings, backend: Backend | None = None) -> int:
    """Remove containers past their deadline label without taking over the data directory."""
    if backend is None:
        from sandbox.backends import make_backend

        backend = make_backend(settings.backend)
    now = time.time()
    expired = [
        c for c in backend.list_managed({LABEL_MANAGED: "1"}) if expired_label(c.labels, now)
    ]
    for c in expired:
        backend.remove(c.ref)
    return len(expired)


def expired_label(labels: Mapping[str, str], now: float) -> bool:
    """Past its deadline label. No deadline, or one we cannot read, is never expired."""
    try:
        return int(labels[LABEL_DEADLINE]) < now
    except (KeyError, ValueError):
        return False
