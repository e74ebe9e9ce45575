"""Example MCP server: a small CRM with customers, notes and contact details.

python examples/mcp_servers/crm.py                  # stdio
python examples/mcp_servers/crm.py --http 8765      # streamable HTTP on 127.0.0.1:8765/mcp
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

# Tools raise ToolError for anticipated failures: its message reaches the caller, where
# any other exception is reported as a bare crash.
mcp = MCPServer("crm", instructions="Customers, their contact details and account notes.")

CUSTOMERS: dict[str, dict[str, Any]] = {
    "C-1001": {"id": "C-1001", "name": "Maria Gonzalez", "email": "maria.gonzalez@example.com",
               "phone": "+1 415 555 0132", "company": "Gonzalez Bakery", "segment": "smb", "city": "San Francisco"},
    "C-1002": {"id": "C-1002", "name": "Jonas Weber", "email": "jonas.weber@beispiel.de",
               "phone": "+49 30 901820", "company": "Weber Logistik GmbH", "segment": "enterprise", "city": "Berlin"},
    "C-1003": {"id": "C-1003", "name": "Aiko Tanaka", "email": "aiko.tanaka@example.jp",
               "phone": "+81 3-1234-5678", "company": "Tanaka Design", "segment": "smb", "city": "Tokyo"},
    "C-1004": {"id": "C-1004", "name": "Samuel Okafor", "email": "sam.okafor@example.ng",
               "phone": "+234 803 123 4567", "company": "Okafor Farms", "segment": "mid-market", "city": "Lagos"},
    "C-1005": {"id": "C-1005", "name": "Chloé Martin", "email": "chloe.martin@exemple.fr",
               "phone": "+33 1 42 68 53 00", "company": "Martin & Fils", "segment": "enterprise", "city": "Paris"},
}  # fmt: skip
NOTES: dict[str, list[dict[str, Any]]] = {
    "C-1002": [{"id": 1, "text": "Renewal due in March; asked about volume pricing."}],
}
_note_ids = itertools.count(100)


@mcp.tool()
def list_customers(segment: str | None = None) -> list[dict[str, Any]]:
    """List customers (id, name, company, segment), optionally only one segment."""
    return [
        {k: c[k] for k in ("id", "name", "company", "segment")}
        for c in CUSTOMERS.values()
        if segment is None or c["segment"] == segment
    ]


@mcp.tool()
def get_customer(customer_id: str) -> dict[str, Any]:
    """Full record of one customer, with email and phone."""
    if customer_id not in CUSTOMERS:
        raise ToolError(f"no customer {customer_id}")
    return CUSTOMERS[customer_id]


@mcp.tool()
def search_customers(query: str, limit: int = 10) -> list[dict[str, Any]]:
    """Customers whose name, company or city contains the query (case-insensitive)."""
    q = query.lower()
    hits = [
        c
        for c in CUSTOMERS.values()
        if any(q in str(c[k]).lower() for k in ("name", "company", "city"))
    ]
    return hits[:limit]


@mcp.tool()
def add_note(customer_id: str, text: str) -> dict[str, Any]:
    """Attach a note to a customer's account."""
    if customer_id not in CUSTOMERS:
        raise ToolError(f"no customer {customer_id}")
    note = {"id": next(_note_ids), "text": text}
    NOTES.setdefault(customer_id, []).append(note)
    return note


@mcp.tool()
def list_notes(customer_id: str) -> list[dict[str, Any]]:
    """Notes on a customer's account, oldest first."""
    return NOTES.get(customer_id, [])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT"
    )
    args = ap.parse_args()
    if args.http:
        mcp.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        mcp.run()


if __name__ == "__main__":
    main()
