"""Example MCP server: an outbound mailer that queues emails (nothing is really sent).

python examples/mcp_servers/mailer.py                  # stdio
python examples/mcp_servers/mailer.py --http 8766      # streamable HTTP
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

# Tools raise ToolError for anticipated failures: its message reaches the caller, where
# any other exception is reported as a bare crash.
mcp = MCPServer("mailer", instructions="Queue emails to customers and read the outbox.")
OUTBOX: list[dict[str, Any]] = []
_ids = itertools.count(1)


@mcp.tool()
def send_email(to: str, subject: str, body: str, cc: list[str] | None = None) -> dict[str, Any]:
    """Queue an email. Returns its id and status."""
    if "@" not in to:
        raise ToolError(f"not an email address: {to!r}")
    message = {
        "id": next(_ids),
        "to": to,
        "cc": cc or [],
        "subject": subject,
        "body": body,
        "status": "queued",
    }
    OUTBOX.append(message)
    return {"id": message["id"], "status": "queued"}


@mcp.tool()
def list_outbox() -> list[dict[str, Any]]:
    """Every queued email, oldest first."""
    return OUTBOX


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", type=int, metavar="PORT")
    args = ap.parse_args()
    if args.http:
        mcp.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        mcp.run()


if __name__ == "__main__":
    main()
