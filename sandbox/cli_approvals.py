"""`sandbox approvals`: see and decide tool calls waiting for approval on a running server.

Approvals live in the server that runs the code (`sandbox serve`), so these commands talk to
its HTTP API with an API key of the owner: `--url` / SANDBOX_URL, `--api-key` /
SANDBOX_API_KEY.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from sandbox.exceptions import SandboxError

app = typer.Typer(
    no_args_is_help=True, help="Tool calls waiting for approval on a running `sandbox serve`."
)

Url = Annotated[str, typer.Option(envvar="SANDBOX_URL", help="The server's base URL.")]
Key = Annotated[str | None, typer.Option(envvar="SANDBOX_API_KEY", help="An API key of the owner.")]
Reason = Annotated[str, typer.Option(help="Why; a denied call's code sees it.")]
DEFAULT_URL = "http://127.0.0.1:8080"


def _client(url: str, key: str | None):  # type: ignore[no-untyped-def]
    from sandbox.client import Client

    return Client(url, key, retries=0, timeout=30)


def _fail(exc: SandboxError) -> typer.Exit:
    from sandbox.cli_errors import explain, fail

    return fail(*explain(exc))


@app.command("list")
def list_approvals(
    session: Annotated[str | None, typer.Option(help="Only this session's.")] = None,
    url: Url = DEFAULT_URL,
    api_key: Key = None,
) -> None:
    """The owner's pending approvals, oldest first (arguments as the code sent them)."""
    try:
        with _client(url, api_key) as client:
            pending = client.approvals(session)
    except SandboxError as exc:
        raise _fail(exc) from exc
    for a in pending:
        left = max(0, round(a.expires_at - time.time()))
        typer.echo(f"{a.id}  {a.server}.{a.tool}  session {a.session}  {left} s left")
        typer.echo(f"    why: {a.reason}")
        typer.echo(f"    arguments: {json.dumps(a.arguments, ensure_ascii=False)}")
    if not pending:
        typer.echo("no pending approvals", err=True)


def _decide(approval_id: str, approve: bool, reason: str, url: str, key: str | None) -> None:
    try:
        with _client(url, key) as client:
            done = (client.approve if approve else client.deny)(approval_id, reason)
    except SandboxError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{done.id} {done.status}")


@app.command()
def approve(
    approval_id: str, reason: Reason = "", url: Url = DEFAULT_URL, api_key: Key = None
) -> None:
    """Let the waiting call go ahead."""
    _decide(approval_id, True, reason, url, api_key)


@app.command()
def deny(
    approval_id: str, reason: Reason = "", url: Url = DEFAULT_URL, api_key: Key = None
) -> None:
    """Refuse the waiting call (its code gets ToolForbiddenError with the reason)."""
    _decide(approval_id, False, reason, url, api_key)
