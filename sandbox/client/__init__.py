"""Python client for the HTTP API, with the same session interface as the embedded Orchestrator:

    from sandbox.client import Client
    with Client("http://127.0.0.1:8080", api_key="sbx_...") as client:
        with client.session() as s:
            r = s.run("print(1)")

With no arguments the client reads SANDBOX_URL and SANDBOX_API_KEY (`Client()`). The URL is
the server's root: one ending in /v1 or /mcp is refused with the URL to use instead. A key
with whitespace around it (a key file's newline), a 'Bearer ' prefix or characters a header
cannot carry is refused with what is wrong, never silently changed, and never echoed.

`RemoteSession` and the embedded `sandbox.Session` both satisfy `sandbox.session_api.SessionAPI`;
`AsyncClient` has the same methods, awaited (and `aclose()`), and its sessions satisfy
`AsyncSessionAPI`. Errors are the embedded API's classes, found by the server's error code
(`sandbox.exceptions.error_for`), and carry that `code` and the HTTP `status`.
Only idempotent requests (GET, PUT, DELETE, or a POST with an Idempotency-Key) are retried,
on connection errors and 502/503/504.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.client.aio import AsyncClient, AsyncRemoteSession
from sandbox.client.sync import Client, RemoteSession
from sandbox.models import OutputEvent

__all__ = ["AsyncClient", "AsyncRemoteSession", "Client", "OutputEvent", "RemoteSession"]

if TYPE_CHECKING:  # mypy holds the remote sessions to the session interface
    from sandbox.session_api import AsyncSessionAPI, SessionAPI

    def _conforms(s: RemoteSession, a: AsyncRemoteSession) -> tuple[SessionAPI, AsyncSessionAPI]:
        return s, a
