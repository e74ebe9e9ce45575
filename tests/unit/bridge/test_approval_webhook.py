"""The approvals webhook: signed posts off the bridge loop, a decision in the answer, and
failures counted on the trail."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.audit import AuditKeys, AuditLog
from sandbox.audit_queue import AuditQueue
from sandbox.bridge.approvals import ApprovalBroker, ApprovalSettings
from sandbox.bridge.approvals.webhook import ApprovalWebhook
from sandbox.runtime import protocol
from tests.unit.bridge.test_approvals import SEND, Ctx, first_pending

SECRET = "s3cret-for-the-hook"


class Receiver:
    """A webhook receiver behind httpx.MockTransport: keeps what it got, answers `answer`."""

    def __init__(self, answer: httpx.Response) -> None:
        self.answer = answer
        self.got: list[httpx.Request] = []
        self.seen = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.got.append(request)
        self.seen.set()
        return self.answer


@pytest.fixture
def records(tmp_path: Path) -> Any:
    audit = AuditLog(tmp_path / "audit.log", AuditKeys.load_or_create(tmp_path / "keys.json"))
    queue = AuditQueue(audit)
    yield audit, queue
    queue.close()
    audit.close()


def hooked(records: Any, receiver: Receiver, **rules: Any) -> tuple[ApprovalBroker, Any]:
    settings = ApprovalSettings(
        webhook_url="https://hooks.example/approvals", webhook_secret=SECRET, **rules
    )
    broker = ApprovalBroker(settings, records[1])
    hook = ApprovalWebhook(broker, settings, records[1], transport=httpx.MockTransport(receiver))
    return broker, hook


def test_a_requested_approval_is_posted_signed_and_the_answer_can_decide_it(
    records: Any,
) -> None:
    receiver = Receiver(httpx.Response(200, json={"decision": "deny", "reason": "not today"}))
    broker, hook = hooked(records, receiver)
    verdict = asyncio.run(broker.gate(Ctx(), "mailer", "send_email", SEND))
    hook.close()
    assert verdict == (protocol.FORBIDDEN, "mailer.send_email was not approved (denied): not today")
    first = receiver.got[0]
    stamp, body = first.headers["x-sandbox-timestamp"], first.content
    expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert first.headers["x-sandbox-signature"] == f"sha256={expected}"
    sent = json.loads(body)
    assert (
        sent["event"] == "approval.requested" and first.headers["x-sandbox-event"] == sent["event"]
    )
    assert sent["approval"]["arguments"] == SEND and sent["approval"]["status"] == "pending"
    settled = json.loads(receiver.got[1].content)
    assert settled["event"] == "approval.settled" and settled["approval"]["decided_by"] == "webhook"


def test_an_answer_without_a_decision_leaves_it_to_a_person(records: Any) -> None:
    receiver = Receiver(httpx.Response(202))
    broker, hook = hooked(records, receiver)

    async def work() -> Any:
        gate = asyncio.create_task(broker.gate(Ctx(), "mailer", "send_email", SEND))
        pending = await first_pending(broker)
        await asyncio.to_thread(receiver.seen.wait, 10)
        assert broker.pending("alice") == [pending]  # still waiting after the hook answered
        broker.decide("alice", pending.id, True)
        return await gate

    assert asyncio.run(work()) is None
    hook.close()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (httpx.Response(500), "http_500"),
        (httpx.Response(302, headers={"location": "/x"}), "http_302"),
    ],
)
def test_a_failing_receiver_is_counted_and_the_approval_still_waits(
    records: Any, answer: httpx.Response, reason: str
) -> None:
    receiver = Receiver(answer)
    broker, hook = hooked(records, receiver, timeout_s=0.2)
    code, message = asyncio.run(broker.gate(Ctx(), "mailer", "send_email", SEND))
    hook.close()
    assert code == protocol.FORBIDDEN and "(expired)" in message
    records[1].flush()
    failed = [r for r in records[0].read() if r["event"] == "approval_webhook_failed"]
    assert failed and failed[0]["reason"] == reason and failed[0]["owner"] == "alice"
