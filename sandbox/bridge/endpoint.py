"""The host side of a tool call: every call from a sandbox passes through `ToolBridge.handle`.

    token check → allowlist → argument checks (size, shape) → rate limit → upstream call
    (with timeout) → result size cap → audit record (who, which tool, outcome, duration;
    never argument values) → response frame.

Only error *codes* and short messages cross back into the sandbox.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.audit import AuditLog
from sandbox.bridge import codegen
from sandbox.bridge.config import McpConfig
from sandbox.bridge.search import search
from sandbox.bridge.tokens import TokenRefused, TokenRegistry, token_id
from sandbox.bridge.upstream import ToolInfo, UpstreamCallError, UpstreamPool
from sandbox.channel import response_frame
from sandbox.core.loop import BackgroundLoop
from sandbox.exceptions import InvalidInputError
from sandbox.models import ToolLimits
from sandbox.pii import Tokenizer
from sandbox.ratelimit import TokenBucket
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
        resolve: Callable[[str], str] | None = None,
        loop: BackgroundLoop | None = None,
    ) -> None:
        self.limits = limits or ToolLimits()
        self.audit = audit
        self.tokens = TokenRegistry()
        self.upstreams = UpstreamPool(config, resolve=resolve, loop=loop)
        self.api_dir = api_dir
        self.generated = codegen.generate(self.upstreams.tools(), api_dir / "servers")
        self._index = json.loads((api_dir / "servers" / "index.json").read_text())

    @property
    def servers_dir(self) -> Path:
        return self.api_dir / "servers"

    def tools(self) -> list[ToolInfo]:
        return self.upstreams.tools()

    def search_tools(
        self,
        query: str,
        detail: str = "summary",
        limit: int = 20,
        allowed_tools: tuple[str, ...] | None = None,
    ) -> list[dict[str, Any]]:
        """Rank the configured tools (only those a session may call, if given).

        Raises:
            InvalidInputError: detail is not name, summary or schema.
        """
        index = [t for t in self._index if allowed(allowed_tools, t["server"], t["name"])]
        try:
            return search(index, query, detail, limit)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc

    def context(
        self,
        owner: str,
        session: str,
        exec_id: str,
        allowed_tools: Iterable[str] | None,
        tokenizer: Tokenizer | None = None,
    ) -> RunContext:
        return RunContext(
            owner,
            session,
            exec_id,
            tuple(allowed_tools) if allowed_tools is not None else None,
            TokenBucket(self.limits.calls_per_second, self.limits.burst),
            tokenizer,
        )

    def submit(self, ctx: RunContext, body: bytes, reply: Callable[[bytes], None]) -> None:
        """Handle one call frame off the caller's thread; `reply` gets the response frame."""
        fut = self.upstreams.submit(self.handle(ctx, body))
        fut.add_done_callback(
            lambda f: reply(
                f.result()
                if not f.exception()
                else _frame(
                    None,
                    {
                        "ok": False,
                        "error": {"code": protocol.INTERNAL, "message": "bridge failure"},
                    },
                )
            )
        )

    async def handle(self, ctx: RunContext, body: bytes) -> bytes:
        started = time.monotonic()
        call_id: object = None
        server = tool = ""
        outcome = "ok"
        try:
            if len(body) > self.limits.max_args_bytes:
                raise _Refusal(
                    protocol.TOO_LARGE, f"call is larger than {self.limits.max_args_bytes} bytes"
                )
            try:
                req = json.loads(body)
            except ValueError:
                raise _Refusal(protocol.BAD_REQUEST, "call is not valid JSON") from None
            if not isinstance(req, dict):
                raise _Refusal(protocol.BAD_REQUEST, "call must be a JSON object")
            call_id = req.get("id") if isinstance(req.get("id"), int) else None
            token = req.get("token")
            try:
                self.tokens.check(token, ctx.session, ctx.exec_id)
            except TokenRefused as refusal:
                self.audit.record(
                    "token_refused",
                    owner=ctx.owner,
                    session=ctx.session,
                    exec_id=ctx.exec_id,
                    reason=refusal.reason,
                    token_id=token_id(token) if isinstance(token, str) and token else None,
                )
                raise _Refusal(protocol.UNAUTHORIZED, "invalid or expired run token") from None
            req_server, req_tool, args = req.get("server"), req.get("tool"), req.get("args", {})
            if not isinstance(req_server, str) or not isinstance(req_tool, str):
                raise _Refusal(protocol.BAD_REQUEST, "server and tool must be strings")
            server, tool = req_server[:256], req_tool[:256]
            if not isinstance(args, dict):
                raise _Refusal(protocol.BAD_REQUEST, "args must be a JSON object")
            if not allowed(ctx.allowed, server, tool):
                raise _Refusal(
                    protocol.FORBIDDEN, f"{server}.{tool} is not allowed in this session"
                )
            if not ctx.bucket.take():
                raise _Refusal(protocol.RATE_LIMITED, "too many tool calls; slow down")
            tok = ctx.tokenizer
            if tok is not None:
                args = tok.detokenize(args)  # the upstream gets real values, the sandbox never does
            result = await self.upstreams.call(server, tool, args, self.limits.call_timeout_s)
            if tok is not None:
                # CPU work on up to max_result_bytes: keep it off the loop other sessions share.
                result = await asyncio.get_running_loop().run_in_executor(
                    None, tok.tokenize, result
                )
            frame = _frame(call_id, {"ok": True, "result": result})
            if len(frame) > self.limits.max_result_bytes:
                raise _Refusal(
                    protocol.TOO_LARGE,
                    f"result is larger than {self.limits.max_result_bytes} bytes",
                )
            return frame
        except _Refusal as r:
            outcome = r.code
            return _frame(call_id, {"ok": False, "error": {"code": r.code, "message": r.message}})
        except UpstreamCallError as e:
            outcome = e.code
            message = ctx.tokenizer.tokenize(str(e)) if ctx.tokenizer is not None else str(e)
            return _frame(call_id, {"ok": False, "error": {"code": e.code, "message": message}})
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self.audit.record(
                "tool_call",
                owner=ctx.owner,
                session=ctx.session,
                exec_id=ctx.exec_id,
                server=server[:128],
                tool=tool[:128],
                outcome=outcome,
                duration_ms=round((time.monotonic() - started) * 1000, 3),
            )

    def close(self) -> None:
        self.upstreams.close()


class _Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _frame(call_id: object, payload: dict[str, Any]) -> bytes:
    return response_frame(call_id, payload)
