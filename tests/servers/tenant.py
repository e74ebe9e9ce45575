"""An MCP server over stdio for tenancy tests: which process answers, with which credential,
and what it remembers (in memory, like a server holding one tenant's data).

Stdlib only, speaking just enough of the protocol (initialize, tools/list, tools/call), so a
test can start dozens of them quickly; the example servers cover the official SDK's side.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

_NOTES: list[str] = []
_OUT = threading.Lock()
_WRAPPED = {"type": "object", "properties": {"result": {}}, "required": ["result"]}


def _schema(**props: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": v} for k, v in props.items()},
        "required": list(props),
    }


TOOLS = {
    "whoami": (
        "This process's id and the TENANT_TOKEN it was started with."
        + os.environ.get("TENANT_NOTE", ""),  # what a server may say of itself, PII included
        _schema(),
    ),
    "remember": ("Keep a note; returns how many this process holds.", _schema(text="string")),
    "recall": ("Every note this process holds.", _schema()),
    "wait": ("Answers after `seconds`.", _schema(seconds="number")),
}


def _run(tool: str, args: dict[str, Any]) -> Any:
    if tool == "whoami":
        return {"pid": os.getpid(), "token": os.environ.get("TENANT_TOKEN", "")}
    if tool == "remember":
        _NOTES.append(str(args["text"]))
        return len(_NOTES)
    if tool == "recall":
        return list(_NOTES)
    time.sleep(float(args["seconds"]))
    return "done"


def _send(message: dict[str, Any]) -> None:
    with _OUT:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


def _call(msg_id: object, params: dict[str, Any]) -> None:
    value = _run(params["name"], params.get("arguments") or {})
    result = {
        "content": [{"type": "text", "text": json.dumps(value)}],
        "structuredContent": {"result": value},
        "isError": False,
    }
    _send({"jsonrpc": "2.0", "id": msg_id, "result": result})


def _answer(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "tenant", "version": "1"},
        }
    if method == "tools/list":
        tools = [
            {"name": n, "description": d, "inputSchema": s, "outputSchema": _WRAPPED}
            for n, (d, s) in TOOLS.items()
        ]
        return {"tools": tools}
    if method == "ping":
        return {}
    return None


def main() -> None:
    for line in sys.stdin:
        msg = json.loads(line)
        if "id" not in msg or "method" not in msg:
            continue  # notifications and replies need no answer
        method, params = msg["method"], msg.get("params") or {}
        if method == "tools/call":
            threading.Thread(target=_call, args=(msg["id"], params), daemon=True).start()
            continue
        result = _answer(method, params)
        if result is None:
            error = {"code": -32601, "message": f"no method {method}"}
            _send({"jsonrpc": "2.0", "id": msg["id"], "error": error})
        else:
            _send({"jsonrpc": "2.0", "id": msg["id"], "result": result})


if __name__ == "__main__":
    main()
