"""GET /v1/approvals and POST /v1/approvals/{id}: the owner's keys see and decide their own
approvals only; another owner gets 404, as for one that is settled or never was."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from sandbox import Orchestrator
from sandbox.bridge.approvals import Approval
from tests.unit.conftest import MakeOrc
from tests.unit.http.test_api import Api


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
    return Api(make_orc(approvals={"timeout_s": 30}))


async def listed(c: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    for _ in range(1000):  # bounded: the waiting call opens its approval on another thread
        r = await c.get("/v1/approvals", params=params)
        assert r.status_code == 200, r.text
        if r.json():
            return list(r.json())
        await asyncio.sleep(0.005)
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
