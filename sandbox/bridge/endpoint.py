"""The host side of a tool call: every call from a sandbox passes through `ToolBridge.handle`.

    token check → allowlist → argument checks (size, shape) → rate limit → upstream call
    (with timeout) → result size cap → audit record (who, which tool, outcome, duration;
    never argument values) → response frame.

Only error *codes* and short messages cross back into the sandbox.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.audit import AuditLog
from sandbox.audit_queue import AuditQueue
from sandbox.bridge.approvals import ApprovalBroker, approved
from sandbox.bridge.catalog import ToolCatalog
from sandbox.bridge.checks import depth, schema_problem
from sandbox.bridge.config import McpConfig
from sandbox.bridge.pool import Resolver, UpstreamPool
from sandbox.bridge.tokens import TokenRefused, TokenRegistry, token_id
from sandbox.bridge.upstream import ToolInfo, UpstreamCallError
from sandbox.channel import response_frame
from sandbox.core.loop import BackgroundLoop
from sandbox.exceptions import InvalidInputError
from sandbox.models import ToolLimits
from sandbox.pii import Tokenizer
from sandbox.pii.policy import DEFAULT as DEFAULT_POLICY
from sandbox.pii.policy import RestorePolicy
from sandbox.pii.restore import RestoreRefusal, restore
from sandbox.ratelimit import RestartBudget, TokenBucket
from sandbox.runtime import protocol

logger = logging.getLogger(__name__)


@dataclass
class RunContext:
    """What the bridge knows about the run a call comes from (never taken from the call itself)."""

    owner: str
    session: str
    exec_id: str
    allowed: tuple[str, ...] | None
    bucket: TokenBucket
    tokenizer: Tokenizer | None = None
    """The session's: arguments are detokenized on the way out, results tokenized on the way in."""
    policy: RestorePolicy = DEFAULT_POLICY
    """Which tokens may be restored into which tool arguments (sandbox/pii/policy.py)."""
    approval: tuple[str, ...] = ()
    """Tools whose calls wait for a person's decision (the profile's `approval` globs)."""
    in_flight: int = 0
    refused: int = 0
    cut: str | None = None
    """Set once the run broke a per-run bound; its channel is then closed and the run ended."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def allowed(patterns: tuple[str, ...] | None, server: str, tool: str) -> bool:
    """None allows every tool; otherwise 'server.tool' must match one pattern ('crm.*', '*')."""
    if patterns is None:
        return True
    return any(fnmatch.fnmatchcase(f"{server}.{tool}", p) for p in patterns)


class ToolBridge:
    """Upstream servers, their generated code API, tokens and the call handler."""

    def __init__(
        self,
        config: McpConfig,
        api_dir: Path,
        audit: AuditLog,
        limits: ToolLimits | None = None,
        resolve: Resolver | None = None,
        loop: BackgroundLoop | None = None,
        approvals: ApprovalBroker | None = None,
    ) -> None:
        self.limits = limits or ToolLimits()
        self.audit = audit
        # Records are written by another thread: the loop serving every tenant's calls never
        # waits on the disk, and repeated refusals become one record with a count.
        self.records = AuditQueue(audit)
        self.tokens = TokenRegistry()
        self.approvals = approvals or ApprovalBroker(records=self.records)
        self.upstreams = UpstreamPool(config, self.limits, resolve=resolve, loop=loop)
        self._restarts = RestartBudget(self.limits.restarts_per_owner, 60.0)
        self._pending: dict[str, set[Future[bytes]]] = {}  # exec id -> its calls in flight
        self._pending_lock = threading.Lock()
        self.api_dir = api_dir
        # Per owner: the deployment's servers, plus an owner's own (seen by that owner only).
        self.catalog = ToolCatalog(self.upstreams, api_dir)

    @property
    def servers_dir(self) -> Path:
        return self.catalog.servers_dir()

    def servers_dir_for(self, owner: str) -> Path:
        """The code API an owner's boxes mount at /servers."""
        return self.catalog.servers_dir(owner)

    def tools(self, owner: str | None = None) -> list[ToolInfo]:
        return self.catalog.tools(owner)

    def search_tools(
        self,
        query: str,
        detail: str = "summary",
        limit: int = 20,
        allowed_tools: tuple[str, ...] | None = None,
        owner: str | None = None,
    ) -> list[dict[str, Any]]:
        """Rank the tools `owner` sees (only those a session may call, if given).

        Raises:
            InvalidInputError: detail is not name, summary or schema.
        """
        try:
            return self.catalog.search(
                owner, query, detail, limit, lambda s, t: allowed(allowed_tools, s, t)
            )
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc

    def context(
        self,
        owner: str,
        session: str,
        exec_id: str,
        allowed_tools: Iterable[str] | None,
        tokenizer: Tokenizer | None = None,
        policy: RestorePolicy = DEFAULT_POLICY,
        approval: Iterable[str] = (),
    ) -> RunContext:
        return RunContext(
            owner,
            session,
            exec_id,
            tuple(allowed_tools) if allowed_tools is not None else None,
            TokenBucket(self.limits.calls_per_second, self.limits.burst),
            tokenizer,
            policy,
            tuple(approval),
        )

    def submit(self, ctx: RunContext, body: bytes, reply: Callable[[bytes], None]) -> None:
        """Handle one call frame off the caller's thread; `reply` gets the response frame.

        A run may have `max_in_flight` calls waiting at once; more are refused here, on the
        run's own thread, without touching the shared loop or holding their bodies."""
        with ctx.lock:
            busy = ctx.in_flight >= self.limits.max_in_flight
            if not busy:
                ctx.in_flight += 1
        if busy:
            self._refuse(ctx, "too_many_in_flight")
            reply(_error(None, protocol.RATE_LIMITED, "too many tool calls in flight"))
            return
        fut = self.upstreams.submit(self.handle(ctx, body))
        with self._pending_lock:
            self._pending.setdefault(ctx.exec_id, set()).add(fut)

        def done(f: Future[bytes]) -> None:
            with ctx.lock:
                ctx.in_flight -= 1
            with self._pending_lock:
                self._pending.get(ctx.exec_id, set()).discard(f)
            if f.cancelled():
                # Its run ended first (end_run): on the record once, here, whether or not the
                # call had started.
                self.records.put(
                    "tool_call",
                    owner=ctx.owner,
                    session=ctx.session,
                    exec_id=ctx.exec_id,
                    outcome="cancelled",
                )
            elif f.exception() is not None:
                reply(_error(None, protocol.INTERNAL, "bridge failure"))
            else:
                reply(f.result())

        fut.add_done_callback(done)

    def end_run(self, exec_id: str) -> None:
        """The run is over: calls of it still waiting for their upstream are cancelled, so
        runs that end quickly cannot leave calls piling up on shared upstreams."""
        with self._pending_lock:
            pending = self._pending.pop(exec_id, set())
        for fut in pending:
            fut.cancel()

    async def _tokenized(
        self,
        ctx: RunContext,
        tok: Tokenizer,
        server: str,
        tool: str,
        result: object,
        known: dict[str, str],
    ) -> object:
        """A result as the box may see it: tokenized with its origin, the values just restored
        and its tool's outputSchema hints. CPU work on up to max_result_bytes: kept off the
        loop other sessions share."""
        info = self.catalog.tool(ctx.owner, server, tool)
        tokenize = functools.partial(
            tok.tokenize,
            result,
            origin=f"{server}.{tool}",
            known=known,
            schema=info.output_schema if info is not None else None,
        )
        return await asyncio.get_running_loop().run_in_executor(None, tokenize)

    def _refuse(self, ctx: RunContext, reason: str) -> None:
        """Count a refused call (aggregated in the audit trail); past `max_refused` the run is
        cut off."""
        with ctx.lock:
            ctx.refused += 1
            if ctx.refused >= self.limits.max_refused and ctx.cut is None:
                ctx.cut = "too_many_refused_calls"
        fields = {"owner": ctx.owner, "session": ctx.session, "exec_id": ctx.exec_id}
        self.records.count("tool_refused", {**fields, "reason": reason})

    async def _restore(
        self, ctx: RunContext, server: str, tool: str, args: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The call's arguments with real values where the restore policy allows every token
        (or a person approved what it and the profile leave to one: bridge/approvals), and
        which values those were; else refused, each blocked token on the record by type and
        origin (never its value). The sandbox itself never gets a real value."""
        tok = ctx.tokenizer
        out = restore(tok.vault, ctx.policy, server, tool, args) if tok is not None else None
        if (asked := await self.approvals.gate(ctx, server, tool, args, out)) is not None:
            raise _Refusal(*asked)  # denied, expired, or too many waiting
        if tok is not None and isinstance(out, RestoreRefusal) and out.needs_approval:
            out = restore(tok.vault, ctx.policy, server, tool, args, approved(out))
        if isinstance(out, RestoreRefusal):
            fields = {"owner": ctx.owner, "session": ctx.session, "exec_id": ctx.exec_id}
            for record, sample in out.records():
                self.records.count("pii_restore_refused", {**fields, **record}, sample)
            raise _Refusal(protocol.FORBIDDEN, out.message())
        return (out.args, out.known()) if out is not None else (args, {})

    async def handle(self, ctx: RunContext, body: bytes) -> bytes:
        """One call, mediated: size, shape, token, allowlist, arguments, rate, restart budget,
        upstream, result. Every outcome is audited (off this loop); refusals count against
        the run's bound."""
        started = time.monotonic()
        call_id: object = None
        server = tool = ""
        outcome = "ok"
        known: dict[str, str] = {}  # values restored into this call: turned back into tokens
        try:
            req = self._parse(body)
            call_id = req.get("id") if isinstance(req.get("id"), int) else None
            self._check_token(ctx, req.get("token"))
            server, tool, args = self._target(ctx, req)
            restart_key = (ctx.owner, server)
            if not self._restarts.allows(restart_key):
                raise _Refusal(
                    protocol.UNAVAILABLE,
                    f"{server} was restarted too often by this owner's calls; try again later",
                )
            args, known = await self._restore(ctx, server, tool, args)
            tok = ctx.tokenizer
            try:
                result = await self.upstreams.call(
                    server, tool, args, self.limits.call_timeout_s, owner=ctx.owner
                )
            except UpstreamCallError as e:
                if e.restarted:
                    # One tenant's call cost every tenant of that server its connection: on the
                    # record, against that tenant, and rate-limited.
                    self._restarts.spend(restart_key)
                    self.records.put(
                        "upstream_restart",
                        owner=ctx.owner,
                        session=ctx.session,
                        exec_id=ctx.exec_id,
                        server=server,
                        tool=tool,
                        reason=e.code,
                    )
                raise
            if tok is not None:
                result = await self._tokenized(ctx, tok, server, tool, result, known)
            frame = _frame(call_id, {"ok": True, "result": result})
            if len(frame) > self.limits.max_result_bytes:
                raise _Refusal(
                    protocol.TOO_LARGE,
                    f"result is larger than {self.limits.max_result_bytes} bytes",
                )
            return frame
        except _Refusal as r:
            outcome = r.code
            self._refuse(ctx, r.code)
            return _error(call_id, r.code, r.message)
        except UpstreamCallError as e:
            outcome = e.code
            message = str(e)
            if ctx.tokenizer is not None:  # an upstream quoting an argument names only its token
                message = ctx.tokenizer.tokenize(message, origin=f"{server}.{tool}", known=known)
            return _error(call_id, e.code, message)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception:
            # The top of one call's handling: a bug here must be on the record as a failure.
            outcome = "internal_error"
            logger.exception("tool call failed inside the bridge")
            raise
        finally:
            if outcome != "cancelled" and (outcome == "ok" or not outcome.startswith(_REFUSED)):
                self.records.put(
                    "tool_call",
                    owner=ctx.owner,
                    session=ctx.session,
                    exec_id=ctx.exec_id,
                    server=server[:128],
                    tool=tool[:128],
                    outcome=outcome,
                    duration_ms=round((time.monotonic() - started) * 1000, 3),
                )

    def _parse(self, body: bytes) -> dict[str, Any]:
        if len(body) > self.limits.max_args_bytes:
            raise _Refusal(
                protocol.TOO_LARGE, f"call is larger than {self.limits.max_args_bytes} bytes"
            )
        try:
            req = json.loads(body)
        except (ValueError, RecursionError):
            raise _Refusal(protocol.BAD_REQUEST, "call is not valid JSON") from None
        if not isinstance(req, dict):
            raise _Refusal(protocol.BAD_REQUEST, "call must be a JSON object")
        return req

    def _check_token(self, ctx: RunContext, token: object) -> None:
        try:
            self.tokens.check(token, ctx.session, ctx.exec_id)
        except TokenRefused as refusal:
            self.records.count(
                "token_refused",
                {
                    "owner": ctx.owner,
                    "session": ctx.session,
                    "exec_id": ctx.exec_id,
                    "reason": refusal.reason,
                },
                {"token_id": token_id(token) if isinstance(token, str) and token else None},
            )
            raise _Refusal(protocol.UNAUTHORIZED, "invalid or expired run token") from None

    def _target(self, ctx: RunContext, req: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """The tool a call may reach and its checked arguments."""
        req_server, req_tool, args = req.get("server"), req.get("tool"), req.get("args", {})
        if not isinstance(req_server, str) or not isinstance(req_tool, str):
            raise _Refusal(protocol.BAD_REQUEST, "server and tool must be strings")
        server, tool = req_server[:256], req_tool[:256]
        if not isinstance(args, dict):
            raise _Refusal(protocol.BAD_REQUEST, "args must be a JSON object")
        if not allowed(ctx.allowed, server, tool):
            raise _Refusal(protocol.FORBIDDEN, f"{server}.{tool} is not allowed in this session")
        if not ctx.bucket.take():
            raise _Refusal(protocol.RATE_LIMITED, "too many tool calls; slow down")
        info = self.catalog.tool(ctx.owner, server, tool)
        if info is None:  # refused here, counted: never an upstream round trip per probe
            raise _Refusal(protocol.NOT_FOUND, f"no tool {server}.{tool}")
        if depth(args, self.limits.max_depth) > self.limits.max_depth:
            raise _Refusal(
                protocol.BAD_REQUEST, f"arguments nest deeper than {self.limits.max_depth} levels"
            )
        problem = schema_problem(info.input_schema, args)
        if problem is not None:
            raise _Refusal(protocol.BAD_REQUEST, f"arguments do not match the schema: {problem}")
        return server, tool, args

    def close(self) -> None:
        self.upstreams.close()
        self.records.close()


class _Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _frame(call_id: object, payload: dict[str, Any]) -> bytes:
    return response_frame(call_id, payload)


def _error(call_id: object, code: str, message: str) -> bytes:
    return _frame(call_id, {"ok": False, "error": {"code": code, "message": message}})


# Refusal outcomes are counted (aggregated) by _refuse, not written once per call.
_REFUSED = (
    protocol.NOT_FOUND,
    protocol.TOO_LARGE,
    protocol.BAD_REQUEST,
    protocol.UNAUTHORIZED,
    protocol.FORBIDDEN,
    protocol.RATE_LIMITED,
)
