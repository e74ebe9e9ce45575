"""GET /v1/approvals and POST /v1/approvals/{id}: the owner's keys see and decide their own
approvals only; another owner gets 404, as for one that is settled or never was."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import Orchestrator
from sandbox.bridge.approvals import Approval
from tests.unit.conftest import MakeOrc
from tests.unit.http.test_api import Api

FAST = {"rate_per_s": 500, "rate_burst": 500}  # the tests poll GET /v1/approvals


class Waiting:
    """A call waiting for approval on a loop of its own (as the bridge's calls do)."""

    def __init__(self, orc: Orchestrator, session: str = "s1") -> None:
        self.outcome: Approval | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._ask(orc, session),))
        self._thread.start()

    async def _ask(self, orc: Orchestrator, session: str) -> None:
        self.outcome = await orc.approvals.request(
            owner="alice",
            session=session,
            exec_id="e1",
            server="mailer",
            tool="send_email",
            args={"to": "[EMAIL_1]"},
            reason="profile requires approval (mailer.send_*)",
        )

    def result(self) -> Approval | None:
        self._thread.join(timeout=10)
        return self.outcome


@pytest.fixture
def api(make_orc: MakeOrc) -> Api:
    return Api(make_orc(approvals={"timeout_s": 30}, api=FAST))


async def listed(c: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    for _ in range(1500):  # bounded: the waiting call opens its approval on another thread
        r = await c.get("/v1/approvals", params=params)
        assert r.status_code == 200, r.text
        if r.json():
            return list(r.json())
        await asyncio.sleep(0.02)
    raise AssertionError("no approval listed")


def test_the_owner_lists_and_approves_a_waiting_call(api: Api) -> None:
    waiting = Waiting(api.orc)

    async def main() -> dict[str, Any]:
        async with api.client("alice") as c:
            (pending,) = await listed(c)
            assert (await c.get("/v1/approvals", params={"session": "s2"})).json() == []
            assert (await c.get(f"/v1/approvals/{pending['id']}")).json() == pending
            r = await c.post(
                f"/v1/approvals/{pending['id']}", json={"decision": "approve", "reason": "ok"}
            )
            assert r.status_code == 200, r.text
            again = await c.post(f"/v1/approvals/{pending['id']}", json={"decision": "deny"})
            assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
            return dict(r.json())

    decided = asyncio.run(main())
    outcome = waiting.result()
    assert outcome is not None and outcome.status == "approved" == decided["status"]
    assert decided["arguments"] == {"to": "[EMAIL_1]"} and decided["decision_reason"] == "ok"
    assert decided["decided_by"].startswith("key:")


def test_another_owner_gets_404_for_an_approval_that_is_not_theirs(api: Api) -> None:
    waiting = Waiting(api.orc)

    async def main() -> None:
        async with api.client("alice") as alice, api.client("bob") as bob:
            (pending,) = await listed(alice)
            assert (await bob.get("/v1/approvals")).json() == []
            assert (await bob.get(f"/v1/approvals/{pending['id']}")).status_code == 404
            r = await bob.post(f"/v1/approvals/{pending['id']}", json={"decision": "approve"})
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
            r = await alice.post(
                f"/v1/approvals/{pending['id']}", json={"decision": "deny", "reason": "no"}
            )
            assert r.json()["status"] == "denied"

    asyncio.run(main())
    outcome = waiting.result()
    assert outcome is not None and (outcome.status, outcome.decision_reason) == ("denied", "no")


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "maybe"},
        {"decision": "approve", "extra": 1},
        {"decision": "deny", "reason": "x" * 501},
    ],
)
def test_a_malformed_decision_is_refused(api: Api, body: dict[str, object]) -> None:
    async def main() -> httpx.Response:
        async with api.client("alice") as c:
            return await c.post("/v1/approvals/0123", json=body)

    r = asyncio.run(main())
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


def test_approvals_need_a_key(api: Api) -> None:
    async def main() -> list[int]:
        async with api.client(None) as c:
            return [
                (await c.get("/v1/approvals")).status_code,
                (await c.post("/v1/approvals/x", json={"decision": "approve"})).status_code,
            ]

    assert asyncio.run(main()) == [401, 401]


ROOT = Path(__file__).parents[3]
SEND_CODE = """
from sandbox_tools import ToolForbiddenError
from servers.mailer import send_email
try:
    print("sent", send_email(to="ops@example.com", subject="Renewal", body="Hi [PERSON_1]"))
except ToolForbiddenError as exc:
    print("refused:", exc)
print("after")
"""


@pytest.fixture
def mail_api(make_orc: MakeOrc, tmp_path: Path) -> Api:
    mcp = {
        "mcpServers": {
            "mailer": {
                "command": sys.executable,
                "args": [str(ROOT / "examples/mcp_servers/mailer.py")],
            }
        }
    }
    (tmp_path / "mcp.json").write_text(json.dumps(mcp))
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps({"profiles": {"reviewed": {"approval": ["mailer.send_*"]}}}))
    return Api(
        make_orc(mcp_config=tmp_path / "mcp.json", profiles=profiles, approvals={"timeout_s": 60})
    )


async def run_deciding(api: Api, decision: dict[str, str]) -> tuple[dict[str, Any], Any]:
    """Start a run whose send_email waits for approval, decide it over HTTP, return both."""
    async with api.client("alice") as c, api.client("bob") as bob:
        sid = (await c.post("/v1/sessions", json={"profile": "reviewed"})).json()["id"]
        running = asyncio.create_task(
            c.post(f"/v1/sessions/{sid}/runs", json={"code": SEND_CODE}, timeout=60)
        )
        (pending,) = await listed(c, session=sid)
        assert (await bob.post(f"/v1/approvals/{pending['id']}", json=decision)).status_code == 404
        decided = await c.post(f"/v1/approvals/{pending['id']}", json=decision)
        assert decided.status_code == 200, decided.text
        run = await running
        assert run.status_code == 200, run.text
        return pending, run.json()


def test_a_call_waits_for_approval_and_goes_ahead_once_approved(mail_api: Api) -> None:
    pending, run = asyncio.run(run_deciding(mail_api, {"decision": "approve"}))
    assert (pending["server"], pending["tool"]) == ("mailer", "send_email")
    assert pending["arguments"]["body"] == "Hi [PERSON_1]"  # as the box sent it
    assert pending["reason"] == "profile requires approval (mailer.send_*)"
    assert run["exit_code"] == 0 and "sent {'id': 1, 'status': 'queued'}" in run["stdout"]
    mail_api.orc.flush_audit()
    trail = [r for r in mail_api.orc.audit.read() if r["event"].startswith("approval_")]
    assert [(r["event"], r.get("outcome")) for r in trail] == [
        ("approval_requested", None),
        ("approval_decided", "approved"),
    ]
    assert trail[0]["exec_id"] == run["exec_id"]


def test_a_denied_call_raises_in_the_box_and_the_run_goes_on(mail_api: Api) -> None:
    _, run = asyncio.run(run_deciding(mail_api, {"decision": "deny", "reason": "not this week"}))
    assert run["exit_code"] == 0, run["stderr"]
    assert "refused: mailer.send_email was not approved (denied): not this week" in run["stdout"]
    assert run["stdout"].rstrip().endswith("after")


def test_a_run_that_times_out_withdraws_its_approval(mail_api: Api) -> None:
    async def main() -> dict[str, Any]:
        async with mail_api.client("alice") as c:
            sid = (await c.post("/v1/sessions", json={"profile": "reviewed"})).json()["id"]
            body = {"code": SEND_CODE, "timeout": 2}
            run = await c.post(f"/v1/sessions/{sid}/runs", json=body, timeout=60)
            assert (await c.get("/v1/approvals")).json() == []
            return dict(run.json())

    run = asyncio.run(main())
    assert run["timed_out"] is True
    mail_api.orc.flush_audit()
    decided = [r for r in mail_api.orc.audit.read() if r["event"] == "approval_decided"]
    assert [(r["outcome"], r["by"]) for r in decided] == [("withdrawn", "run_end")]


RESTORE_CODE = """
from sandbox_tools import ToolForbiddenError
from servers.crm import get_customer
from servers.mailer import send_email
c = get_customer(customer_id="C-1001")
print("email", c["email"])
try:
    print("sent", send_email(to=c["email"], subject="Renewal", body="Hello"))
except ToolForbiddenError as exc:
    print("refused:", exc)
"""


@pytest.fixture
def restore_api(make_orc: MakeOrc, tmp_path: Path) -> Api:
    servers = {
        name: {"command": sys.executable, "args": [str(ROOT / f"examples/mcp_servers/{name}.py")]}
        for name in ("crm", "mailer")
    }
    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": servers}))
    rule = {
        "entities": ["EMAIL"],
        "from": "crm.*",
        "to": "mailer.send_email",
        "args": ["to"],
        "action": "approve",
    }
    return Api(
        make_orc(
            mcp_config=tmp_path / "mcp.json",
            pii={"restore_rules": [rule]},
            approvals={"timeout_s": 60},
            api=FAST,
        )
    )


def test_a_restore_the_policy_leaves_to_a_person_goes_out_once_approved(restore_api: Api) -> None:
    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        async with restore_api.client("alice") as c:
            sid = (await c.post("/v1/sessions", json={})).json()["id"]
            body = {"code": RESTORE_CODE}
            running = asyncio.create_task(c.post(f"/v1/sessions/{sid}/runs", json=body))
            (pending,) = await listed(c, session=sid)
            await c.post(f"/v1/approvals/{pending['id']}", json={"decision": "approve"})
            return pending, (await running).json()

    pending, run = asyncio.run(main())
    assert pending["reason"] == (
        "policy: restoring [EMAIL_1] (EMAIL from crm.get_customer) into mailer.send_email "
        "argument 'to' needs approval"
    )
    assert pending["arguments"]["to"] == "[EMAIL_1]"  # what a reviewer sees: the token
    assert "email [EMAIL_1]" in run["stdout"] and "sent {'id': 1" in run["stdout"], run
    pool = restore_api.orc.bridge.upstreams  # type: ignore[union-attr]
    sent = pool.submit(pool.call("mailer", "list_outbox", {}, 5, owner="alice")).result(10)
    assert sent[0]["to"] == "maria.gonzalez@example.com"  # the upstream got the real value


def test_a_restore_denied_by_a_person_raises_in_the_box(restore_api: Api) -> None:
    async def main() -> dict[str, Any]:
        async with restore_api.client("alice") as c:
            sid = (await c.post("/v1/sessions", json={})).json()["id"]
            body = {"code": RESTORE_CODE}
            running = asyncio.create_task(c.post(f"/v1/sessions/{sid}/runs", json=body))
            (pending,) = await listed(c, session=sid)
            decision = {"decision": "deny", "reason": "ask maria.gonzalez@example.com first"}
            await c.post(f"/v1/approvals/{pending['id']}", json=decision)
            return dict((await running).json())

    run = asyncio.run(main())
    assert (
        "refused: mailer.send_email was not approved (denied): ask [EMAIL_1] first"
        in (run["stdout"])
    )
    assert "maria.gonzalez" not in run["stdout"]


def test_the_clients_and_the_cli_list_and_decide_over_a_real_server(make_orc: MakeOrc) -> None:
    from typer.testing import CliRunner

    from sandbox.cli import app as cli
    from sandbox.client import AsyncClient, Client
    from sandbox.exceptions import NotFoundError
    from sandbox.keys import KeyStore
    from tests.integration.test_http_api import Server

    orc = make_orc(approvals={"timeout_s": 30}, api=FAST)
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    alice, bob = keys.create("alice")[1], keys.create("bob")[1]
    with Server(orc, keys) as server:
        first, second = Waiting(orc, "s1"), Waiting(orc, "s2")
        with Client(server.url, alice) as c:
            for _ in range(500):  # bounded poll: the calls open their approvals on threads
                if len(c.approvals()) == 2:
                    break
                time.sleep(0.02)
            (one,) = c.approvals(session="s1")
            assert one.arguments == {"to": "[EMAIL_1]"}
            with Client(server.url, bob) as other, pytest.raises(NotFoundError):
                other.deny(one.id)
            assert c.approve(one.id, "fine").status == "approved"

        async def pending_s2() -> list[Approval]:
            async with AsyncClient(server.url, alice) as ac:
                return await ac.approvals("s2")

        (two,) = asyncio.run(pending_s2())
        env = {"SANDBOX_URL": server.url, "SANDBOX_API_KEY": alice}
        listed_out = CliRunner().invoke(cli, ["approvals", "list"], env=env)
        assert listed_out.exit_code == 0 and two.id in listed_out.output
        assert "mailer.send_email" in listed_out.output
        denied = CliRunner().invoke(
            cli, ["approvals", "deny", two.id, "--reason", "not now"], env=env
        )
        assert denied.exit_code == 0 and f"{two.id} denied" in denied.output
        again = CliRunner().invoke(cli, ["approvals", "approve", two.id], env=env)
        assert again.exit_code == 2 and "not_found" in again.output
    outcome = second.result()
    assert first.result() is not None and outcome is not None
    assert (outcome.status, outcome.decision_reason) == ("denied", "not now")
