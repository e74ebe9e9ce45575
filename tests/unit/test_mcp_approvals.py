"""Approvals put to an MCP client's user by elicitation, on both protocol generations: a
request toward the client during the call (2025-11-25) and input_required rounds
(2026-07-28); a client that cannot elicit leaves the decision to the HTTP API."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client as McpClient
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ElicitResult, InputRequiredResult

from sandbox.bridge.approvals import ApprovalBroker, ApprovalSettings
from sandbox.mcp import build_mcp_server
from sandbox.mcp.approvals import Prompts, verdict
from tests.unit.bridge.test_approvals import SEND
from tests.unit.conftest import MakeOrc

MODES = ["legacy", "auto"]  # auto speaks 2026-07-28 to this server


def toy_server(broker: ApprovalBroker, calls: int = 1) -> MCPServer:
    """A tool whose 'run' makes `calls` calls that need approval, one after the other."""
    mcp = MCPServer("toy")
    prompts = Prompts(lambda: broker)

    @mcp.tool()
    async def execute(ctx: Context) -> dict[str, Any] | InputRequiredResult:
        async def run() -> dict[str, Any]:
            outcomes = []
            for i in range(calls):
                a = await broker.request(
                    owner="alice",
                    session="s1",
                    exec_id="e1",
                    server="mailer",
                    tool="send_email",
                    args={**SEND, "n": i},
                    reason="profile requires approval (mailer.send_*)",
                )
                outcomes.append([a.status, a.decision_reason, a.decided_by])
            return {"outcomes": outcomes}

        return await prompts.run(ctx, "s1", "alice", "k1", run)

    return mcp


def answering(action: str, content: dict[str, Any] | None, seen: list[str]) -> Any:
    async def callback(context: Any, params: Any) -> ElicitResult:
        seen.append(params.message)
        return ElicitResult(action=action, content=content)  # type: ignore[arg-type]

    return callback


def call(server: MCPServer, mode: str, callback: Any = None, beside: Any = None) -> Any:
    async def main() -> Any:
        async with McpClient(server, mode=mode, elicitation_callback=callback) as c:  # type: ignore[arg-type]
            work = asyncio.create_task(c.call_tool("execute", {}))
            if beside is not None:
                await beside()
            return (await work).structured_content

    return asyncio.run(main())


@pytest.mark.parametrize("mode", MODES)
def test_the_users_allow_approves_the_waiting_call(mode: str) -> None:
    broker, seen = ApprovalBroker(), []
    got = call(
        toy_server(broker, calls=2),
        mode,
        answering("accept", {"allow": True, "reason": "ok"}, seen),
    )
    assert got == {"outcomes": [["approved", "ok", "mcp:k1"]] * 2}
    assert len(seen) == 2 and "mailer.send_email" in seen[0] and "[EMAIL_1]" in seen[0]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("action", "content", "reason"),
    [
        ("decline", None, "declined by the user"),
        ("cancel", None, "dismissed by the user"),
        ("accept", {"allow": False, "reason": "wrong person"}, "wrong person"),
    ],
)
def test_anything_but_an_explicit_allow_denies(
    mode: str, action: str, content: dict[str, Any] | None, reason: str
) -> None:
    broker = ApprovalBroker()
    got = call(toy_server(broker), mode, answering(action, content, []))
    assert got == {"outcomes": [["denied", reason, "mcp:k1"]]}


@pytest.mark.parametrize("mode", MODES)
def test_a_client_without_elicitation_leaves_the_decision_to_the_http_api(mode: str) -> None:
    broker = ApprovalBroker()

    async def decide_elsewhere() -> None:
        for _ in range(1000):
            if broker.pending("alice"):
                broker.decide("alice", broker.pending("alice")[0].id, True, by="key:k9")
                return
            await asyncio.sleep(0.005)

    got = call(toy_server(broker), mode, None, decide_elsewhere)
    assert got == {"outcomes": [["approved", "no reason given", "key:k9"]]}


def test_an_open_question_is_withdrawn_when_the_approval_is_settled_elsewhere() -> None:
    broker, asked = ApprovalBroker(ApprovalSettings(timeout_s=30)), asyncio.Event()

    async def never_answers(context: Any, params: Any) -> ElicitResult:
        asked.set()
        await asyncio.Event().wait()  # the user looks away
        raise AssertionError("unreachable")

    async def decide_elsewhere() -> None:
        await asyncio.wait_for(asked.wait(), 10)
        broker.decide("alice", broker.pending("alice")[0].id, False, "no", by="key:k9")

    got = call(toy_server(broker), "legacy", never_answers, decide_elsewhere)
    assert got == {"outcomes": [["denied", "no", "key:k9"]]}


def test_a_retry_naming_no_waiting_run_is_refused() -> None:
    from mcp.server.mcpserver.exceptions import ToolError

    prompts = Prompts(ApprovalBroker)
    with pytest.raises(ToolError, match="not_found"):
        prompts._resume("made-up", "k1")


def test_only_an_explicit_allow_approves() -> None:
    assert verdict("accept", {"allow": True}) == (True, "")
    assert verdict("accept", {"allow": "yes"})[0] is False
    assert verdict("accept", None)[0] is False
    assert verdict("accept", {"allow": True, "reason": 5}) == (True, "")


def test_runs_nobody_came_back_for_are_dropped_once_over() -> None:
    from mcp.server.mcpserver.exceptions import ToolError

    from sandbox.mcp.approvals import _Waiting

    async def main() -> None:
        prompts = Prompts(ApprovalBroker, max_waiting=1)
        done = asyncio.create_task(asyncio.sleep(0))
        await done
        first = prompts._park(_Waiting("k1", "alice", done, asyncio.Queue()))
        running = asyncio.create_task(asyncio.Event().wait())
        second = prompts._park(_Waiting("k1", "alice", running, asyncio.Queue()))
        with pytest.raises(ToolError, match="not_found"):
            prompts._resume(first, "k1")  # over and nobody came: dropped for the next
        with pytest.raises(ToolError, match="rate_limited"):  # the one kept still runs
            prompts._park(_Waiting("k1", "alice", running, asyncio.Queue()))
        with pytest.raises(ToolError, match="not_found"):
            prompts._resume(second, "k2")  # another key's retry cannot take it
        assert prompts._resume(second, "k1").task is running
        running.cancel()

    asyncio.run(main())


@pytest.mark.parametrize("mode", MODES)
def test_execute_code_asks_the_user_for_a_send_the_profile_marks(
    make_orc: MakeOrc, tmp_path: Path, mode: str
) -> None:
    mailer = [str(Path(__file__).parents[2] / "examples/mcp_servers/mailer.py")]
    (tmp_path / "mcp.json").write_text(
        json.dumps({"mcpServers": {"mailer": {"command": sys.executable, "args": mailer}}})
    )
    (tmp_path / "profiles.json").write_text(
        json.dumps({"profiles": {"reviewed": {"approval": ["mailer.send_*"]}}})
    )
    orc = make_orc(mcp_config=tmp_path / "mcp.json", profiles=tmp_path / "profiles.json")
    server = build_mcp_server(lambda: orc, local=orc.admission.local("desk", ("reviewed",)))
    seen: list[str] = []
    code = (
        "from servers.mailer import send_email\n"
        "print(send_email(to='ops@example.com', subject='Hi', body='Hello'))"
    )

    async def main() -> Any:
        try:
            user = answering("accept", {"allow": True}, seen)
            async with McpClient(server, mode=mode, elicitation_callback=user) as c:  # type: ignore[arg-type]
                return await c.call_tool("execute_code", {"code": code})
        finally:
            server.sandbox_sessions.close_all()  # type: ignore[attr-defined]

    result = asyncio.run(main())
    assert not result.is_error, result.content
    assert result.content[0].text.endswith("--- stdout ---\n{'id': 1, 'status': 'queued'}")
    assert len(seen) == 1 and "profile requires approval (mailer.send_*)" in seen[0]
    orc.flush_audit()
    decided = [r for r in orc.audit.read() if r["event"] == "approval_decided"]
    assert [(r["outcome"], r["by"]) for r in decided] == [("approved", "mcp:local:desk")]
