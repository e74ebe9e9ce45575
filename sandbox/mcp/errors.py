"""Our errors as MCP tool errors that start with their stable code."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from sandbox.exceptions import SandboxError, describe

T = TypeVar("T")
logger = logging.getLogger(__name__)


def tool_error(exc: SandboxError) -> ToolError:
    """Our error as an MCP tool error that starts with its stable code. An unexplained one
    (`internal`) says only that: its message may name host paths; the log has it."""
    code = describe(exc)[1]
    if code == "internal":
        logger.error("MCP tool failed: %s", exc)
        return ToolError("internal: internal error")
    return ToolError(f"{code}: {exc}")


def call(fn: Callable[[], T]) -> T:
    """Run `fn`, turning our errors into MCP tool errors that carry the stable code."""
    try:
        return fn()
    except SandboxError as exc:
        raise tool_error(exc) from None


async def admitted(work: Awaitable[T]) -> T:
    """Await a core call, turning our errors into MCP tool errors with their stable code."""
    try:
        return await work
    except SandboxError as exc:
        raise tool_error(exc) from None
