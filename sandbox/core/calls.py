"""What a run's tool calls go to, and what says when a run must be cut off."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.channel import CallHandler, response_frame
from sandbox.core.assembly import Parts
from sandbox.core.box import Box
from sandbox.core.cancel import CANCELLED, CancelToken
from sandbox.pii.policy import RestorePolicy
from sandbox.runtime import protocol

Stop = Callable[[], str | None]
"""Why the run must stop now (a per-run bound broken, a cancel), or None."""


def call_handler(parts: Parts, box: Box, exec_id: str) -> tuple[CallHandler, Stop | None]:
    """The run's tool-call handler, and what says when the run broke a per-run bound."""
    bridge = parts.bridge
    if bridge is None:
        return no_tools, None
    rules = (parts.settings.pii.restore_rules, box.profile.restore_rules)
    ctx = bridge.context(
        box.owner,
        box.session_id,
        exec_id,
        box.tools,
        box.tokenizer,
        RestorePolicy.of(*rules),
        box.profile.approval,
    )

    def on_call(body: bytes, reply: Callable[[bytes], None]) -> None:
        bridge.submit(ctx, body, reply)

    return on_call, lambda: ctx.cut


def with_cancel(stop: Stop | None, cancel: CancelToken | None) -> Stop | None:
    """`stop`, and `cancelled` once the run's caller has cancelled it (a broken bound first)."""
    if cancel is None:
        return stop

    def either() -> str | None:
        return (stop() if stop is not None else None) or (CANCELLED if cancel.cancelled else None)

    return either


def no_tools(body: bytes, reply: Callable[[bytes], None]) -> None:
    reply(
        response_frame(
            None,
            {
                "ok": False,
                "error": {
                    "code": protocol.UNAVAILABLE,
                    "message": "no MCP servers are configured for this sandbox",
                },
            },
        )
    )
