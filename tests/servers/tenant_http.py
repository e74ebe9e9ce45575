"""A remote MCP server (streamable HTTP) that keeps each caller's notes apart by the
credential it presents, as a multi-tenant service would: one owner's token never reads
another's notes.

python tests/servers/tenant_http.py PORT
"""

from __future__ import annotations

import hashlib
import logging
import sys

from mcp.server.mcpserver import Context, MCPServer

logging.getLogger("mcp").setLevel(logging.ERROR)
mcp = MCPServer("tenant-http", log_level="ERROR")
_NOTES: dict[str, list[str]] = {}


def _caller(ctx: Context) -> str:
    auth = (ctx.headers or {}).get("authorization", "")
    return hashlib.sha256(auth.encode()).hexdigest()[:16]


@mcp.tool()
def whoami(ctx: Context) -> str:
    """A digest of the credential this call came with."""
    return _caller(ctx)


@mcp.tool()
def remember(text: str, ctx: Context) -> int:
    """Keep a note for this caller; returns how many they have."""
    notes = _NOTES.setdefault(_caller(ctx), [])
    notes.append(text)
    return len(notes)


@mcp.tool()
def recall(ctx: Context) -> list[str]:
    """This caller's notes."""
    return _NOTES.get(_caller(ctx), [])


if __name__ == "__main__":
    mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
