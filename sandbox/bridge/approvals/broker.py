"""Approval of tool calls from code: a call that needs a person's yes waits here.

A profile marks tools (`Profile.approval`, globs like 'mailer.send_*'), and the PII restore
policy may ask for approval of a restore; either way the call blocks in the bridge while
its run goes on counting its own wall clock. The approval has a deadline of its own
(`ApprovalSettings.timeout_s`): no decision by then is a denial ('expired'). A run that ends
first withdraws its approvals ('withdrawn').

    request ──► pending ──► approved   (the call goes upstream)
                        ├─► denied     (ToolForbiddenError in the box, with the reason)
                        ├─► expired    (the same, past the approval's deadline)
                        └─► withdrawn  (its run ended: nobody is waiting any more)

Decisions come from the owner's keys only (HTTP, MCP elicitation; another owner's approval
is reported as missing) or from the deployment's webhook. Watchers (the webhook, MCP calls in
progress) hear of every new approval and every settled one. What an approval shows is the
call's arguments as the box sent them: tokens, never the values behind them. Every request
and every outcome is on the audit trail (the arguments only as a digest). Pending approvals
are bounded per owner and in total; past either bound the call is refused at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sandbox.audit_queue import AuditQueue
from sandbox.bridge.approvals.models import (
    MAX_REASON,
    Approval,
    ApprovalLimitError,
    ApprovalSettings,
    Status,
    digest,
    summarize,
)
from sandbox.exceptions import NotFoundError
from sandbox.pii.restore import Restored, RestoreRefusal
from sandbox.runtime import protocol

logger = logging.getLogger(__name__)


class ApprovalWatcher(Protocol):
    """Hears of approvals. Called from whichever thread made the change: must not block."""

    def pending(self, approval: Approval) -> None: ...

    def settled(self, approval: Approval) -> None: ...


class _Tokenize(Protocol):
    def tokenize(self, obj: Any) -> Any: ...


class CallContext(Protocol):
    """What the broker needs of a run's call context (the bridge's RunContext)."""

    @property
    def owner(self) -> str: ...
    @property
    def session(self) -> str: ...
    @property
    def exec_id(self) -> str: ...
    @property
    def approval(self) -> tuple[str, ...]: ...
    @property
    def tokenizer(self) -> _Tokenize | None: ...


@dataclass
class _Entry:
    approval: Approval
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event
    tokenizer: _Tokenize | None
    started: float = field(default_factory=time.monotonic)
    outcome: Approval | None = None


class ApprovalBroker:
    """Pending approvals of every run; thread-safe. Calls wait on the bridge's loop; decisions
    come from any thread."""

    def __init__(
        self,
        settings: ApprovalSettings | None = None,
        records: AuditQueue | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or ApprovalSettings()
        self._records, self._clock = records, clock
        self._lock = threading.Lock()
        self._pending: dict[str, _Entry] = {}
        self._per_owner: dict[str, int] = {}
        self._watchers: dict[str | None, list[ApprovalWatcher]] = {}

    # -- the bridge's side ----------------------------------------------------------------

    async def gate(
        self,
        ctx: CallContext,
        server: str,
        tool: str,
        args: Mapping[str, Any],
        restore: Restored | RestoreRefusal | None = None,
    ) -> tuple[str, str] | None:
        """None when the call may go on: nothing asks for approval, or a person approved it.
        Otherwise the error code and message the box gets (the call is not made).

        Asks once for what the profile marks and what the restore policy's verdict on the
        call's tokens (`restore`) leaves to a person. A restore the policy denies is never
        asked about: None, and the caller refuses the call."""
        why = []
        pattern = next(
            (p for p in ctx.approval if fnmatch.fnmatchcase(f"{server}.{tool}", p)), None
        )
        if pattern is not None:
            why.append(f"profile requires approval ({pattern})")
        if isinstance(restore, RestoreRefusal):
            if not restore.needs_approval:
                return None
            why.append(f"policy: {restore.message()}")
        if not why:
            return None
        try:
            outcome = await self.request(
                owner=ctx.owner,
                session=ctx.session,
                exec_id=ctx.exec_id,
                server=server,
                tool=tool,
                args=args,
                reason="; ".join(why),
                tokenizer=ctx.tokenizer,
            )
        except ApprovalLimitError as exc:
            return protocol.RATE_LIMITED, str(exc)
        if outcome.status == "approved":
            return None
        return (
            protocol.FORBIDDEN,
            f"{server}.{tool} was not approved ({outcome.status}): {outcome.decision_reason}",
        )

    async def request(
        self,
        *,
        owner: str,
        session: str,
        exec_id: str,
        server: str,
        tool: str,
        args: Mapping[str, Any],
        reason: str,
        tokenizer: _Tokenize | None = None,
    ) -> Approval:
        """Open an approval and wait for its outcome: approved, denied or expired. Cancelling
        the wait (the run ended) withdraws it.

        Raises:
            ApprovalLimitError: too many approvals are pending for the owner, or in all.
        """
        now = self._clock()
        approval = Approval(
            id=secrets.token_hex(16),
            owner=owner,
            session=session,
            exec_id=exec_id,
            server=server,
            tool=tool,
            arguments=summarize(args),
            reason=reason[:MAX_REASON],
            created_at=now,
            expires_at=now + self.settings.timeout_s,
        )
        entry = _Entry(approval, asyncio.get_running_loop(), asyncio.Event(), tokenizer)
        self._open(entry, args)
        try:
            await asyncio.wait_for(entry.event.wait(), self.settings.timeout_s)
        except TimeoutError:
            self._settle(
                approval.id, "expired", "deadline", f"no decision in {self.settings.timeout_s:g} s"
            )
        except asyncio.CancelledError:
            self._settle(approval.id, "withdrawn", "run_end", "the run ended")
            raise
        if entry.outcome is None:  # _settle sets it before it wakes the waiter
            raise RuntimeError("an approval woke without an outcome")
        return entry.outcome

    def _open(self, entry: _Entry, args: Mapping[str, Any]) -> None:
        a, rules = entry.approval, self.settings
        with self._lock:
            refusal = None
            if len(self._pending) >= rules.max_pending:
                refusal = "too_many_pending"
            elif self._per_owner.get(a.owner, 0) >= rules.max_pending_per_owner:
                refusal = "too_many_pending_for_owner"
            else:
                self._pending[a.id] = entry
                self._per_owner[a.owner] = self._per_owner.get(a.owner, 0) + 1
                watchers = self._watching(a.session)
        if refusal is not None:
            if self._records is not None:
                fields = {"owner": a.owner, "session": a.session, "reason": refusal}
                self._records.count("approval_refused", fields)
            raise ApprovalLimitError(f"too many calls are waiting for approval ({refusal})")
        self._record(
            "approval_requested",
            a,
            reason=a.reason,
            arguments_sha256=digest(args),
            timeout_s=rules.timeout_s,
        )
        for w in watchers:
            _tell(w.pending, a)

    # -- the deciding side ----------------------------------------------------------------

    def decide(
        self, owner: str, approval_id: str, approve: bool, reason: str = "", by: str = ""
    ) -> Approval:
        """Approve or deny a pending approval of `owner`; returns it as settled.

        Raises:
            NotFoundError: no such pending approval of this owner (another owner's, one
                already settled, or none at all).
        """
        with self._lock:
            entry = self._pending.get(approval_id)
            mine = entry is not None and entry.approval.owner == owner
        status: Status = "approved" if approve else "denied"
        said = reason.strip() or "no reason given"
        outcome = self._settle(approval_id, status, by, said) if mine else None
        if outcome is None:
            raise NotFoundError(f"no pending approval {approval_id[:64]!r}")
        return outcome

    def pending(self, owner: str, session: str | None = None) -> list[Approval]:
        """The owner's pending approvals (of one session, if given), oldest first."""
        with self._lock:
            found = [
                e.approval
                for e in self._pending.values()
                if e.approval.owner == owner and (session is None or e.approval.session == session)
            ]
        return sorted(found, key=lambda a: a.created_at)

    def get(self, owner: str, approval_id: str) -> Approval:
        """Raises NotFoundError: no such pending approval of this owner."""
        with self._lock:
            entry = self._pending.get(approval_id)
        if entry is None or entry.approval.owner != owner:
            raise NotFoundError(f"no pending approval {approval_id[:64]!r}")
        return entry.approval

    def watch(self, watcher: ApprovalWatcher, session: str | None = None) -> Callable[[], None]:
        """Tell `watcher` of approvals (of one session, or all); it hears at once of those
        already pending. Returns the function that stops it."""
        with self._lock:
            self._watchers.setdefault(session, []).append(watcher)
            now = [
                e.approval
                for e in self._pending.values()
                if session is None or e.approval.session == session
            ]
        for a in now:
            _tell(watcher.pending, a)

        def unwatch() -> None:
            with self._lock:
                kept = [w for w in self._watchers.get(session, []) if w is not watcher]
                if kept:
                    self._watchers[session] = kept
                else:
                    self._watchers.pop(session, None)

        return unwatch

    def close(self) -> None:
        """Withdraw whatever is pending (the controller is stopping)."""
        with self._lock:
            ids = list(self._pending)
        for approval_id in ids:
            self._settle(approval_id, "withdrawn", "controller", "the controller is stopping")

    # -- settling -------------------------------------------------------------------------

    def _settle(self, approval_id: str, status: Status, by: str, reason: str) -> Approval | None:
        """Settle once; None if it was settled already. Wakes the waiting call."""
        with self._lock:
            entry = self._pending.pop(approval_id, None)
            if entry is None:
                return None
            owner = entry.approval.owner
            left = self._per_owner.get(owner, 1) - 1
            if left:
                self._per_owner[owner] = left
            else:
                self._per_owner.pop(owner, None)
            if entry.tokenizer is not None:
                # A person's words go into the box and the trail: PII in them as tokens.
                reason = str(entry.tokenizer.tokenize(reason))
            entry.outcome = outcome = entry.approval.model_copy(
                update={
                    "status": status,
                    "decided_by": by[:128],
                    "decision_reason": reason[:MAX_REASON],
                }
            )
            watchers = self._watching(outcome.session)
        # The trail and the watchers (a webhook's queue) hear of it before the call goes on.
        self._record(
            "approval_decided",
            outcome,
            outcome=status,
            by=outcome.decided_by,
            reason=outcome.decision_reason,
            waited_ms=round((time.monotonic() - entry.started) * 1000, 3),
        )
        for w in watchers:
            _tell(w.settled, outcome)
        with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits any more
            entry.loop.call_soon_threadsafe(entry.event.set)
        return outcome

    def _watching(self, session: str) -> list[ApprovalWatcher]:
        return [*self._watchers.get(None, []), *self._watchers.get(session, [])]

    def _record(self, event: str, a: Approval, **fields: object) -> None:
        if self._records is None:
            return
        self._records.put(
            event,
            owner=a.owner,
            session=a.session,
            exec_id=a.exec_id,
            approval=a.id,
            server=a.server[:128],
            tool=a.tool[:128],
            **fields,
        )


def approved(refusal: RestoreRefusal) -> set[tuple[str, str]]:
    """The (token, argument) pairs a person's yes to `refusal` approves."""
    return {(b.token, b.arg) for b in refusal.blocked}


def _tell(fn: Callable[[Approval], None], approval: Approval) -> None:
    try:
        fn(approval)
    except Exception:  # a watcher's failure must not fail the call or the decision
        logger.exception("approval watcher failed")
