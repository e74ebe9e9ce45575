"""The approval broker: calls that wait for a person, their deadline, their bounds, who may
decide, and the audit trail (no engine, no servers)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from sandbox.audit import AuditKeys, AuditLog
from sandbox.audit_queue import AuditQueue
from sandbox.bridge.approvals import (
    Approval,
    ApprovalBroker,
    ApprovalLimitError,
    ApprovalSettings,
    approved,
    summarize,
)
from sandbox.exceptions import NotFoundError
from sandbox.pii.restore import Blocked, Restored, RestoreRefusal
from sandbox.runtime import protocol

SEND = {"to": "[EMAIL_1]", "subject": "Renewal", "body": "Hi [PERSON_1]"}


class Upper:
    """A stand-in tokenizer: what it 'tokenizes' comes out upper-case."""

    def tokenize(self, obj: Any) -> Any:
        return str(obj).upper()


@dataclass
class Ctx:
    owner: str = "alice"
    session: str = "s1"
    exec_id: str = "e1"
    approval: tuple[str, ...] = ("mailer.send_*",)
    tokenizer: Upper | None = None


@pytest.fixture
def trail(tmp_path: Path) -> tuple[AuditLog, AuditQueue]:
    audit = AuditLog(tmp_path / "audit.log", AuditKeys.load_or_create(tmp_path / "keys.json"))
    records = AuditQueue(audit, "c1")
    yield audit, records
    records.close()
    audit.close()


def make(trail: tuple[AuditLog, AuditQueue], **rules: Any) -> ApprovalBroker:
    return ApprovalBroker(ApprovalSettings(**rules), trail[1])


def events(trail: tuple[AuditLog, AuditQueue], prefix: str = "approval_") -> list[dict[str, Any]]:
    trail[1].flush()
    return [r for r in trail[0].read() if r["event"].startswith(prefix)]


async def first_pending(broker: ApprovalBroker, owner: str = "alice") -> Approval:
    """The owner's oldest pending approval, waited for with a bound (never a sleep)."""
    for _ in range(1000):
        found = broker.pending(owner)
        if found:
            return found[0]
        await asyncio.sleep(0.005)
    raise AssertionError("no approval became pending")


def run(work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(work())


def test_a_call_no_rule_marks_goes_ahead_without_asking(trail: Any) -> None:
    broker = make(trail)
    assert run(lambda: broker.gate(Ctx(), "crm", "get_customer", {"id": 1})) is None
    assert broker.pending("alice") == [] and events(trail) == []


def test_an_approved_call_goes_ahead_and_both_steps_are_on_the_trail(trail: Any) -> None:
    broker = make(trail)

    async def work() -> tuple[Any, Approval, Approval]:
        gate = asyncio.create_task(broker.gate(Ctx(), "mailer", "send_email", SEND))
        pending = await first_pending(broker)
        decided = broker.decide("alice", pending.id, True, "looks right", by="key:k1")
        return await gate, pending, decided

    verdict, pending, decided = run(work)
    assert verdict is None
    assert pending.arguments == SEND and pending.status == "pending"
    assert pending.reason == "profile requires approval (mailer.send_*)"
    assert (decided.status, decided.decided_by, decided.decision_reason) == (
        "approved",
        "key:k1",
        "looks right",
    )
    requested, settled = events(trail)
    assert requested["event"] == "approval_requested" and requested["approval"] == pending.id
    assert "arguments" not in requested and len(requested["arguments_sha256"]) == 64
    assert (settled["outcome"], settled["by"], settled["controller"]) == (
        "approved",
        "key:k1",
        "c1",
    )
    assert broker.pending("alice") == []


def test_a_denied_call_is_forbidden_with_the_reason_tokenized(trail: Any) -> None:
    broker = make(trail)

    async def work() -> Any:
        gate = asyncio.create_task(
            broker.gate(Ctx(tokenizer=Upper()), "mailer", "send_email", SEND)
        )
        broker.decide("alice", (await first_pending(broker)).id, False, "not to bob@x.example")
        return await gate

    code, message = run(work)
    assert code == protocol.FORBIDDEN
    assert message == "mailer.send_email was not approved (denied): NOT TO BOB@X.EXAMPLE"
    assert events(trail)[-1]["reason"] == "NOT TO BOB@X.EXAMPLE"


def test_no_decision_before_the_deadline_is_a_denial(trail: Any) -> None:
    broker = make(trail, timeout_s=0.05)
    code, message = run(lambda: broker.gate(Ctx(), "mailer", "send_email", SEND))
    assert code == protocol.FORBIDDEN and "(expired)" in message
    assert events(trail)[-1]["outcome"] == "expired" and broker.pending("alice") == []


def test_a_run_that_ends_first_withdraws_its_approval(trail: Any) -> None:
    broker = make(trail)

    async def work() -> Approval:
        gate = asyncio.create_task(broker.gate(Ctx(), "mailer", "send_email", SEND))
        pending = await first_pending(broker)
        gate.cancel()  # what ToolBridge.end_run does to the calls of a run that is over
        with pytest.raises(asyncio.CancelledError):
            await gate
        return pending

    pending = run(work)
    assert broker.pending("alice") == []
    last = events(trail)[-1]
    assert (last["approval"], last["outcome"], last["by"]) == (pending.id, "withdrawn", "run_end")
    with pytest.raises(NotFoundError):
        broker.decide("alice", pending.id, True)


def test_another_owner_can_neither_see_nor_decide_an_approval(trail: Any) -> None:
    broker = make(trail)

    async def work() -> Any:
        gate = asyncio.create_task(broker.gate(Ctx(), "mailer", "send_email", SEND))
        pending = await first_pending(broker)
        assert broker.pending("mallory") == [] and broker.pending("mallory", "s1") == []
        with pytest.raises(NotFoundError):
            broker.get("mallory", pending.id)
        with pytest.raises(NotFoundError):
            broker.decide("mallory", pending.id, True)
        assert broker.get("alice", pending.id).status == "pending"
        broker.decide("alice", pending.id, False)
        return await gate

    code, message = run(work)
    assert code == protocol.FORBIDDEN and message.endswith("no reason given")


def test_pending_approvals_are_bounded_per_owner_and_in_all(trail: Any) -> None:
    broker = make(trail, max_pending_per_owner=2, max_pending=3)

    def ask(owner: str) -> asyncio.Task[Any]:
        return asyncio.create_task(broker.gate(Ctx(owner=owner), "mailer", "send_email", SEND))

    async def work() -> Any:
        waiting = [ask("alice"), ask("alice")]
        while len(broker.pending("alice")) < 2:
            await asyncio.sleep(0.005)
        over_owner = await broker.gate(Ctx(), "mailer", "send_email", SEND)
        waiting.append(ask("bob"))
        await first_pending(broker, "bob")
        with pytest.raises(ApprovalLimitError):
            await broker.request(
                owner="carol", session="s", exec_id="e", server="a", tool="b", args={}, reason="r"
            )
        for t in waiting:
            t.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        return over_owner

    assert run(work)[0] == protocol.RATE_LIMITED
    refused = events(trail, "approval_refused")
    assert [r["reason"] for r in refused] == ["too_many_pending_for_owner", "too_many_pending"]
    assert [r["owner"] for r in refused] == ["alice", "carol"]


def test_watchers_hear_of_pending_and_settled_approvals_of_their_session(trail: Any) -> None:
    broker = make(trail)
    heard: list[tuple[str, str, str]] = []

    class Watcher:
        def __init__(self, name: str) -> None:
            self.name = name

        def pending(self, a: Approval) -> None:
            heard.append((self.name, "pending", a.session))

        def settled(self, a: Approval) -> None:
            heard.append((self.name, a.status, a.session))

    async def work() -> None:
        everything = broker.watch(Watcher("all"))
        gate = asyncio.create_task(broker.gate(Ctx(session="s1"), "mailer", "send_email", SEND))
        pending = await first_pending(broker)
        late = broker.watch(Watcher("s1"), session="s1")  # hears of what is pending already
        broker.watch(Watcher("s2"), session="s2")
        broker.decide("alice", pending.id, True)
        await gate
        everything()
        late()
        gate = asyncio.create_task(broker.gate(Ctx(session="s1"), "mailer", "send_email", SEND))
        broker.decide("alice", (await first_pending(broker)).id, True)
        await gate

    run(work)
    assert heard == [
        ("all", "pending", "s1"),
        ("s1", "pending", "s1"),
        ("all", "approved", "s1"),
        ("s1", "approved", "s1"),
    ]


def test_a_failing_watcher_does_not_fail_the_call(trail: Any) -> None:
    broker = make(trail)

    class Broken:
        def pending(self, a: Approval) -> None:
            raise RuntimeError("boom")

        settled = pending

    broker.watch(Broken())

    async def work() -> Any:
        gate = asyncio.create_task(broker.gate(Ctx(), "mailer", "send_email", SEND))
        broker.decide("alice", (await first_pending(broker)).id, True)
        return await gate

    assert run(work) is None


def test_the_argument_summary_is_bounded_and_keeps_tokens() -> None:
    args = {f"k{i}": i for i in range(40)}
    args.update(text="[EMAIL_1] " + "x" * 1000, nested={"a": ["[IBAN_1]"] * 200}, flag=True)
    out = summarize(args)
    assert len(out) == 33 and out["…"] == "11 more"
    short = summarize({"text": args["text"], "nested": args["nested"], "n": None})
    assert short["text"].startswith("[EMAIL_1] ") and short["text"].endswith("…")
    assert len(short["text"]) == 257 and short["nested"].startswith('{"a": ["[IBAN_1]"')
    assert short["n"] is None


def test_closing_withdraws_what_is_pending(trail: Any) -> None:
    broker = make(trail)

    async def work() -> Any:
        gate = asyncio.create_task(broker.gate(Ctx(), "mailer", "send_email", SEND))
        await first_pending(broker)
        broker.close()
        return await gate

    code, message = run(work)
    assert code == protocol.FORBIDDEN and "(withdrawn)" in message


def refusal(action: Literal["approve", "deny"]) -> RestoreRefusal:
    blocked = Blocked("[EMAIL_1]", "EMAIL", ("crm.get_customer",), "to", action)
    return RestoreRefusal("mailer", "send_email", (blocked,))


def test_a_restore_the_policy_leaves_to_a_person_is_asked_once_with_the_profiles_reason(
    trail: Any,
) -> None:
    broker = make(trail)

    async def work() -> tuple[Any, Approval]:
        gate = asyncio.create_task(
            broker.gate(Ctx(), "mailer", "send_email", SEND, refusal("approve"))
        )
        pending = await first_pending(broker)
        broker.decide("alice", pending.id, True)
        return await gate, pending

    verdict, pending = run(work)
    assert verdict is None
    assert pending.reason == (
        "profile requires approval (mailer.send_*); policy: restoring [EMAIL_1] (EMAIL from "
        "crm.get_customer) into mailer.send_email argument 'to' needs approval"
    )
    assert approved(refusal("approve")) == {("[EMAIL_1]", "to")}
    assert len(events(trail, "approval_requested")) == 1


def test_a_restore_the_policy_denies_is_never_put_to_a_person(trail: Any) -> None:
    broker = make(trail)
    assert run(lambda: broker.gate(Ctx(), "mailer", "send_email", SEND, refusal("deny"))) is None
    assert events(trail) == []
    asked = Ctx(approval=())
    assert run(lambda: broker.gate(asked, "mailer", "send_email", SEND, Restored({}))) is None
