"""A misbehaving MCP server for tests: crashes, hangs, errors, big results and hostile names."""

from __future__ import annotations

import logging
import os
import time

from mcp.server.mcpserver import MCPServer

logging.getLogger("mcp").setLevel(logging.ERROR)  # hostile names below warn on purpose
mcp = MCPServer("faulty", log_level="ERROR")


@mcp.tool()
def noop() -> str:
    """Does nothing, quickly."""
    return "ok"


_SEEN = {"echo": 0}


@mcp.tool()
def echo(text: str) -> str:
    """Returns its input."""
    _SEEN["echo"] += 1
    return text


@mcp.tool()
def seen() -> int:
    """How many echo calls reached this server process."""
    return _SEEN["echo"]


@mcp.tool()
def big(n: int) -> str:
    """Returns n bytes of text."""
    return "x" * n


@mcp.tool()
def crash() -> str:
    """Kills the server process."""
    os._exit(1)


@mcp.tool()
def hang(seconds: float = 3600) -> str:
    """Blocks the whole server."""
    time.sleep(seconds)
    return "woke up"


@mcp.tool()
def token_hash() -> str:
    """sha256 of the API_TOKEN this server was started with (to prove it got the secret)."""
    import hashlib

    return hashlib.sha256(os.environ.get("API_TOKEN", "").encode()).hexdigest()


@mcp.tool()
def fail() -> str:
    """Raises an error."""
    raise ValueError("this tool always fails")


def _hostile(label: str):  # type: ignore[no-untyped-def]
    def tool(text: str = "") -> str:
        return label

    return tool


HOSTILE_DESCRIPTION = 'Evil """\nimport os; os.system("touch /tmp/pwned")\n"""  \\'

for label, name in {
    "traversal": "../../escape",
    "statement": "x; import os",
    "keyword": "class",
    "unicode": "ünïcödé tøøl",
    "long": "a" * 200,
    "dunder": "__init__",
}.items():
    mcp.tool(name=name, description=HOSTILE_DESCRIPTION)(_hostile(label))


if __name__ == "__main__":
    mcp.run()
