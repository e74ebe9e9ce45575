"""Approvals put to the MCP client's user (elicitation) while an `execute_code` call runs.

A call of the run's code that needs approval (sandbox/bridge/approvals) waits in the bridge;
meanwhile this asks the user of the MCP client whose call started the run, and their answer
becomes the decision (accept with "allow" ticked: approved; anything else: denied). The
broker keeps every rule; this only translates. How depends on the protocol version:

- up to 2025-11-25 (handshake): an `elicitation/create` request per approval, sent while the
  tool call is in progress (`ctx.elicit`), withdrawn when the approval settles elsewhere;
- 2026-07-28 (no requests toward the client): the tool call returns `input_required` with
  the approvals to ask; the run goes on meanwhile, and the client's retry carries the
  answers and resumes waiting for the run (`request_state` names the waiting run).

A client that declared no form elicitation is never asked: its approvals are decided over
the HTTP API (`GET /v1/approvals`), by the webhook, or expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from mcp.server.elicitation import AcceptedElicitation, render_elicitation_schema
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

from sandbox.bridge.approvals import Approval, ApprovalBroker
from sandbox.exceptions import NotFoundError

T = TypeVar("T")
logger = logging.getLogger(__name__)


class Answer(BaseModel):
    """The form the user fills in."""

    allow: bool = Field(title="Allow this call?")
    reason: str = Field("", title="Reason (optional; code sees it when denied)", max_length=500)


SCHEMA = render_elicitation_schema(Answer)


def message(a: Approval) -> str:
    left = max(0, round(a.expires_at - time.time()))
    args = json.dumps(a.arguments, ensure_ascii=False)
    return (
        f"Code running in the sandbox wants to call {a.server}.{a.tool} ({a.reason}).\n"
        f"Arguments (personal data shown as tokens): {args}\n"
        f"Allow it? Unanswered, it is denied in {left} s."
    )


def verdict(action: str, content: Mapping[str, Any] | None) -> tuple[bool, str]:
    """(approve, reason) from an elicitation's outcome; only an explicit allow approves."""
    if action != "accept":
        return False, f"{'declined' if action == 'decline' else 'dismissed'} by the user"
    said = content or {}
    reason = said.get("reason")
    return said.get("allow") is True, reason[:500] if isinstance(reason, str) else ""


def can_elicit(ctx: Context) -> bool:
    """The client declared form elicitation (an empty `elicitation` capability means form)."""
    caps = ctx.client_capabilities
    asked = caps.elicitation if caps is not None else None
    return asked is not None and (asked.form is not None or asked.url is None)


@dataclass
class _Waiting:
    """A run whose `execute_code` call returned `input_required` and may be resumed."""

    key_id: str
    owner: str
    task: asyncio.Task[Any]
    fresh: asyncio.Queue[Approval]
    asked: set[str] = field(default_factory=set)
    parked_at: float = field(default_factory=time.monotonic)


class Prompts:
    """Asks MCP users for the approvals of the runs their `execute_code` calls started."""

    def __init__(
        self, broker: Callable[[], ApprovalBroker], max_waiting: int = 256, keep_s: float = 600.0
    ) -> None:
        self._broker, self._max, self._keep_s = broker, max_waiting, keep_s
        self._waiting: dict[str, _Waiting] = {}

    async def run(
        self, ctx: Context, session: str, owner: str, key_id: str, work: Callable[[], Awaitable[T]]
    ) -> T | InputRequiredResult:
        """`work()` (the run), with the session's approvals put to this client's user.

        Raises:
            ToolError: a resumed call names no waiting run of this key.
        """
        if ctx.request_state is not None:  # the retry of a call that returned input_required
            waiting = self._resume(ctx.request_state, key_id)
            self._answer(waiting, ctx.input_responses or {}, f"mcp:{key_id}")
        elif not can_elicit(ctx):
            return await work()
        elif ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return await self._alongside(ctx, session, owner, f"mcp:{key_id}", work)
        else:
            waiting = self._start(session, owner, key_id, work)
        # The waiting run is this call's `work` (the sealed request state binds a retry to
        # the same tool and arguments), so its result is a T.
        return cast("T | InputRequiredResult", await self._next(waiting))

    # -- handshake versions: requests toward the client while the call runs ---------------

    async def _alongside(
        self, ctx: Context, session: str, owner: str, by: str, work: Callable[[], Awaitable[T]]
    ) -> T:
        loop = asyncio.get_running_loop()
        asking: dict[str, asyncio.Task[None]] = {}

        async def ask(a: Approval) -> None:
            try:
                got = await ctx.elicit(message(a), Answer)
            except (MCPError, ValueError) as exc:  # no back-channel, or a malformed answer
                logger.info("approval %s not asked over MCP (%s); it waits for HTTP", a.id, exc)
                return
            content = got.data.model_dump() if isinstance(got, AcceptedElicitation) else None
            approve, reason = verdict(got.action, content)
            with contextlib.suppress(NotFoundError):  # settled meanwhile
                self._broker().decide(owner, a.id, approve, reason, by=by)

        def start(a: Approval) -> None:
            if a.id not in asking:
                asking[a.id] = loop.create_task(ask(a))

        def stop(a: Approval) -> None:  # settled: an open question is withdrawn
            task = asking.pop(a.id, None)
            if task is not None:
                task.cancel()

        unwatch = self._broker().watch(_OnLoop(loop, start, stop), session=session)
        try:
            return await work()
        finally:
            unwatch()
            for task in asking.values():
                task.cancel()
            await asyncio.gather(*asking.values(), return_exceptions=True)

    # -- 2026-07-28: input_required results, resumed by the client's retry ----------------

    def _start(
        self, session: str, owner: str, key_id: str, work: Callable[[], Awaitable[Any]]
    ) -> _Waiting:
        loop = asyncio.get_running_loop()
        fresh: asyncio.Queue[Approval] = asyncio.Queue()
        task = loop.create_task(_run(work))
        unwatch = self._broker().watch(
            _OnLoop(loop, fresh.put_nowait, lambda _: None), session=session
        )
        task.add_done_callback(lambda _: unwatch())  # however the run ends, whoever waits
        return _Waiting(key_id, owner, task, fresh)

    def _resume(self, handle: str, key_id: str) -> _Waiting:
        waiting = self._waiting.get(handle)
        if waiting is None or waiting.key_id != key_id:
            raise ToolError("not_found: no run is waiting for these answers")
        del self._waiting[handle]
        return waiting

    def _answer(self, waiting: _Waiting, answers: Mapping[str, object], by: str) -> None:
        for approval_id, got in answers.items():
            if approval_id not in waiting.asked or not isinstance(got, ElicitResult):
                continue  # only what this run was asked
            approve, reason = verdict(got.action, got.content)
            with contextlib.suppress(NotFoundError):  # settled meanwhile
                self._broker().decide(waiting.owner, approval_id, approve, reason, by=by)

    async def _next(self, waiting: _Waiting) -> Any:
        """The run's result, or the approvals to ask for now (the run goes on meanwhile)."""
        while True:
            more = asyncio.ensure_future(waiting.fresh.get())
            try:
                await asyncio.wait({waiting.task, more}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                # The client cancelled the call (or timed out) while it waited for the run:
                # the run is cancelled too. Between rounds nobody waits, and it goes on.
                waiting.task.cancel()
                raise
            finally:
                more.cancel()
            if waiting.task.done():
                return waiting.task.result()
            batch = [more.result()]
            while not waiting.fresh.empty():
                batch.append(waiting.fresh.get_nowait())
            batch = [a for a in batch if a.id not in waiting.asked and self._pending(a)]
            if batch:
                break
        waiting.asked.update(a.id for a in batch)
        return InputRequiredResult(
            input_requests={
                a.id: ElicitRequest(
                    params=ElicitRequestFormParams(message=message(a), requested_schema=SCHEMA)
                )
                for a in batch
            },
            request_state=self._park(waiting),
        )

    def _pending(self, a: Approval) -> bool:
        try:
            self._broker().get(a.owner, a.id)
        except NotFoundError:
            return False
        return True

    def _park(self, waiting: _Waiting) -> str:
        """Keep `waiting` for the client's retry. A run nobody came back for is dropped once it
        is over and `keep_s` old (the SDK's request state expires by then too), or sooner,
        oldest first, when `max_waiting` are kept."""
        now = time.monotonic()
        for h in [h for h, w in self._waiting.items() if w.task.done()]:
            if now - self._waiting[h].parked_at > self._keep_s:
                del self._waiting[h]
        while len(self._waiting) >= self._max:
            over = [h for h, w in self._waiting.items() if w.task.done()]
            if not over:
                raise ToolError("rate_limited: too many runs are waiting for answers")
            del self._waiting[min(over, key=lambda h: self._waiting[h].parked_at)]
        handle = secrets.token_urlsafe(24)
        waiting.parked_at = now
        self._waiting[handle] = waiting
        return handle


async def _run(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


@dataclass
class _OnLoop:
    """An ApprovalWatcher that hands what it hears to functions on `loop` (it hears on
    whichever thread settled the approval)."""

    loop: asyncio.AbstractEventLoop
    on_pending: Callable[[Approval], None]
    on_settled: Callable[[Approval], None]

    def pending(self, approval: Approval) -> None:
        self.loop.call_soon_threadsafe(self.on_pending, approval)

    def settled(self, approval: Approval) -> None:
        self.loop.call_soon_threadsafe(self.on_settled, approval)
