"""Approval of tool calls end to end: real containers, the example mailer server, the HTTP API
and the MCP endpoint over streamable HTTP. A run's send_email waits for a decision: approved
over HTTP it completes; denied, the code gets ToolForbiddenError and goes on; over MCP the
client's user is asked by elicitation."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import Orchestrator
from sandbox.client import Client
from sandbox.exceptions import NotFoundError
from sandbox.keys import KeyStore
from sandbox.models import RunResult
from tests.conftest import RUN_ID
from tests.integration.test_http_api import Server

ROOT = Path(__file__).parents[2]
SEND = """
from sandbox_tools import ToolForbiddenError
from servers.mailer import send_email
try:
    print("sent", send_email(to="ops@example.com", subject="Renewal", body="Your renewal"))
except ToolForbiddenError as exc:
    print("refused:", exc)
print("after")
"""


@pytest.fixture(scope="module")
def served(make_settings, tmp_path_factory) -> Iterator[tuple[Server, dict[str, str]]]:  # type: ignore[no-untyped-def]
    profiles = tmp_path_factory.mktemp("profiles") / "profiles.json"
    profiles.write_text(
        json.dumps(
            {
                "profiles": {
                    "reviewed": {"approval": ["mailer.send_*"], "limits": {"timeout_s": 120}}
                }
            }
        )
    )
    settings = make_settings(
        controller_id=f"{RUN_ID}ap{secrets.token_hex(2)}",
        profiles=profiles,
        approvals={"timeout_s": 90},
        api={"rate_per_s": 200, "rate_burst": 300},
    )
    mailer = [str(ROOT / "examples/mcp_servers/mailer.py")]
    config = {"mcpServers": {"mailer": {"command": sys.executable, "args": mailer}}}
    keys = KeyStore(settings.data_dir / "keys.json")
    issued = {o: keys.create(o, ["reviewed"])[1] for o in ("alice", "bob")}
    with Orchestrator(settings, mcp_config=config) as orc, Server(orc, keys) as server:
        yield server, issued


def pending_of(client: Client, session: str) -> Any:
    """The session's one pending approval, waited for with a bound."""
    for _ in range(600):
        found = client.approvals(session)
        if found:
            return found[0]
        time.sleep(0.05)  # bounded poll: the call reaches the bridge from the box
    raise AssertionError("no approval became pending")


def run_and_decide(served: Any, approve: bool, reason: str) -> tuple[Any, RunResult]:
    server, issued = served
    with Client(server.url, issued["alice"]) as alice, Client(server.url, issued["bob"]) as bob:
        session = alice.session(profile="reviewed")
        out: list[RunResult] = []
        runner = threading.Thread(target=lambda: out.append(session.run(SEND)))
        runner.start()
        waiting = pending_of(alice, session.id)
        with pytest.raises(NotFoundError):  # another owner cannot decide it
            bob.approve(waiting.id)
        (alice.approve if approve else alice.deny)(waiting.id, reason)
        runner.join(120)
        session.close()
    return waiting, out[0]


def test_a_send_waits_for_approval_over_http_and_completes(served: Any) -> None:
    waiting, result = run_and_decide(served, True, "checked")
    assert (waiting.server, waiting.tool, waiting.status) == ("mailer", "send_email", "pending")
    assert waiting.arguments["subject"] == "Renewal"
    assert result.exit_code == 0, result.stderr
    assert "sent {'id':" in result.stdout and "'status': 'queued'" in result.stdout


def test_a_denied_send_raises_in_the_box_and_the_run_continues(served: Any) -> None:
    _, result = run_and_decide(served, False, "not during the freeze")
    assert result.exit_code == 0, result.stderr
    assert "refused: mailer.send_email was not approved (denied): not during the freeze" in (
        result.stdout
    )
    assert result.stdout.rstrip().endswith("after")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_a_send_is_approved_by_the_mcp_clients_user(served: Any, mode: str) -> None:
    import httpx2
    from mcp import Client as McpClient
    from mcp_types import ElicitResult

    from sandbox.bridge.upstream import _HttpTransport

    server, issued = served
    asked: list[str] = []

    async def user(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"allow": True, "reason": "fine"})

    async def main() -> Any:
        headers = {"Authorization": f"Bearer {issued['alice']}"}
        transport = _HttpTransport(
            f"{server.url}/mcp", httpx2.AsyncClient(headers=headers, timeout=120)
        )
        async with McpClient(transport, mode=mode, elicitation_callback=user) as c:  # type: ignore[arg-type]
            return await c.call_tool("execute_code", {"code": SEND})

    result = asyncio.run(main())
    assert not result.is_error, result.content
    out = result.content[0].text
    assert out.startswith("exit code 0 in ") and "sent {'id':" in out, out
    assert len(asked) == 1 and "mailer.send_email" in asked[0]
    server.orc.flush_audit()
    decided = [r for r in server.orc.audit.read() if r["event"] == "approval_decided"]
    assert decided[-1]["outcome"] == "approved" and decided[-1]["by"].startswith("mcp:")
