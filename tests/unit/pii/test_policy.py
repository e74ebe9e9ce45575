"""Restore rules: which token may go into which tool argument (sandbox/pii/policy.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sandbox.pii.policy import RestorePolicy, RestoreRule, covers
from sandbox.profiles import Profile
from sandbox.settings import PiiSettings

CRM = ("crm.get_customer",)
MAIL_TO = {"entities": ["EMAIL"], "from": "crm.*", "to": "mailer.send_email", "args": ["to"]}


def rule(**body: object) -> RestoreRule:
    return RestoreRule.model_validate(body)


def action(
    policy: RestorePolicy,
    target: str,
    arg: str = "x",
    entity: str = "EMAIL",
    origins: tuple[str, ...] = CRM,
) -> str:
    server, _, tool = target.partition(".")
    return policy.decide(entity, origins, server, tool, arg).action


def test_with_no_rule_a_value_goes_back_only_to_the_server_that_returned_it() -> None:
    policy = RestorePolicy()
    assert action(policy, "crm.add_note") == "allow"
    assert action(policy, "crm.get_customer") == "allow"
    assert action(policy, "mailer.send_email") == "deny"
    assert action(policy, "webhook.post") == "deny"


def test_a_server_whose_name_extends_another_is_another_server() -> None:
    assert action(RestorePolicy(), "crm2.add_note") == "deny"
    assert action(RestorePolicy(), "crm_admin.x") == "deny"


@pytest.mark.parametrize("origin", ["output", "upload"])
def test_values_from_program_output_or_uploads_are_restored_nowhere_by_default(
    origin: str,
) -> None:
    assert action(RestorePolicy(), "crm.search_customers", origins=(origin,)) == "deny"


def test_a_rule_lets_output_values_into_a_named_tool() -> None:
    policy = RestorePolicy([rule(**{"from": "output", "to": "crm.search_customers"})])
    assert action(policy, "crm.search_customers", origins=("output",)) == "allow"
    assert action(policy, "crm.add_note", origins=("output",)) == "deny"


def test_a_token_without_origins_is_denied() -> None:
    assert action(RestorePolicy(), "crm.get_customer", origins=()) == "deny"


def test_the_readme_rule_allows_crm_emails_into_the_mailers_recipient_only() -> None:
    policy = RestorePolicy([rule(**MAIL_TO)])
    assert action(policy, "mailer.send_email", "to") == "allow"
    assert action(policy, "mailer.send_email", "body") == "deny"
    assert action(policy, "mailer.send_email", "to", entity="IBAN") == "deny"
    assert action(policy, "mailer.send_email", "to", origins=("billing.get",)) == "deny"
    assert action(policy, "mailer.list_outbox", "to") == "deny"


@pytest.mark.parametrize(
    ("glob", "target", "ok"),
    [
        ("mailer.*", "mailer.send_email", True),
        ("mailer.send_*", "mailer.send_email", True),
        ("mailer.send_*", "mailer.list_outbox", False),
        ("*", "anything.at_all", True),
        ("mailer.send_email", "mailer.send_emails", False),
        ("mail?r.send_email", "mailer.send_email", True),
    ],
)
def test_targets_are_globs_over_server_dot_tool(glob: str, target: str, ok: bool) -> None:
    policy = RestorePolicy([rule(to=glob)])
    assert (action(policy, target) == "allow") is ok


@pytest.mark.parametrize(
    ("pattern", "arg", "ok"),
    [
        ("to", "to", True),
        ("to", "top", False),
        ("to", "cc", False),
        ("message", "message.to", True),
        ("message.to", "message.to", True),
        ("message.to", "message.body", False),
        ("message.to", "message", False),
        ("message.*", "message.cc", True),
        ("*", "anything", True),
    ],
)
def test_args_name_an_argument_or_a_dotted_path_and_cover_what_is_beneath(
    pattern: str, arg: str, ok: bool
) -> None:
    assert covers(pattern, arg) is ok
    policy = RestorePolicy([rule(to="mailer.send_email", args=[pattern])])
    assert (action(policy, "mailer.send_email", arg) == "allow") is ok


def test_a_rule_without_args_covers_every_argument() -> None:
    policy = RestorePolicy([rule(to="mailer.send_email")])
    assert action(policy, "mailer.send_email", "body") == "allow"
    assert action(policy, "mailer.send_email", "cc.deep.path") == "allow"


def test_entities_and_origins_are_globs_too() -> None:
    policy = RestorePolicy(
        [rule(entities=["*_CARD"], **{"from": ["billing.*", "crm.get_*"]}, to="pay.*")]
    )
    assert action(policy, "pay.charge", entity="CREDIT_CARD") == "allow"
    assert action(policy, "pay.charge", entity="EMAIL") == "deny"
    assert action(policy, "pay.charge", entity="CREDIT_CARD", origins=("crm.list",)) == "deny"


def test_a_token_two_tools_returned_goes_where_either_origin_allows() -> None:
    policy = RestorePolicy([rule(**MAIL_TO)])
    both = ("billing.get_invoice", "crm.get_customer")
    assert action(policy, "mailer.send_email", "to", origins=both) == "allow"
    assert action(policy, "billing.refund", origins=both) == "allow"  # billing's own value
    decision = policy.decide("EMAIL", both, "mailer", "send_email", "to")
    assert decision.origin == "crm.get_customer" and decision.rule == 0


def test_a_deny_rule_wins_over_an_allow_and_over_the_default() -> None:
    policy = RestorePolicy([rule(to="*"), rule(entities=["SECRET"], to="*", action="deny")])
    assert action(policy, "mailer.send_email", entity="EMAIL") == "allow"
    assert action(policy, "mailer.send_email", entity="SECRET") == "deny"
    assert action(policy, "crm.add_note", entity="SECRET") == "deny"  # the default narrowed


def test_approval_is_stricter_than_allow_and_looser_than_deny() -> None:
    ask = rule(to="mailer.*", action="approve")
    assert action(RestorePolicy([ask]), "mailer.send_email") == "approve"
    assert action(RestorePolicy([ask, rule(to="mailer.*")]), "mailer.send_email") == "approve"
    denied = RestorePolicy([ask, rule(to="mailer.*", action="deny")])
    assert action(denied, "mailer.send_email") == "deny"


def test_an_origin_that_allows_beats_one_that_asks_for_approval() -> None:
    policy = RestorePolicy([rule(**{"from": "billing.*"}, to="mailer.*", action="approve")])
    assert action(policy, "mailer.x", origins=("billing.get",)) == "approve"
    assert action(policy, "mailer.x", origins=("billing.get", "mailer.list")) == "allow"


def test_the_order_of_rules_does_not_matter() -> None:
    rules = [rule(to="mailer.*"), rule(entities=["IBAN"], to="mailer.*", action="deny")]
    for policy in (RestorePolicy(rules), RestorePolicy(reversed(rules))):
        assert action(policy, "mailer.x", entity="EMAIL") == "allow"
        assert action(policy, "mailer.x", entity="IBAN") == "deny"


def test_deployment_and_profile_rules_add_up_and_compile_once() -> None:
    deployment, profile = [rule(**MAIL_TO)], (rule(entities=["IBAN"], to="*", action="deny"),)
    policy = RestorePolicy.of(deployment, profile)
    assert len(policy.rules) == 2 and policy is RestorePolicy.of(deployment, profile)
    assert action(policy, "mailer.send_email", "to") == "allow"
    assert action(policy, "crm.add_note", entity="IBAN") == "deny"


def test_rules_are_read_from_settings_and_profiles_in_their_json_form() -> None:
    pii = PiiSettings.model_validate({"restore_rules": [MAIL_TO]})
    assert pii.restore_rules[0].origins == ("crm.*",) and pii.restore_rules[0].to == (
        "mailer.send_email",
    )
    profile = Profile.model_validate({"restore_rules": [{"to": "x.*", "action": "deny"}]})
    assert profile.restore_rules[0].entities == ("*",)
    assert PiiSettings().restore_rules == [] and Profile().restore_rules == ()


@pytest.mark.parametrize(
    "bad",
    [
        {},  # no target
        {"to": []},
        {"to": "a.b", "action": "maybe"},
        {"to": "a.b", "form": "crm.*"},  # a misspelt key is an error, not a wider rule
        {"to": "a.b, c.d"},
        {"to": "a.b", "args": [".to"]},
        {"to": "a.b", "args": [""]},
        {"to": "x" * 300},
    ],
)
def test_malformed_rules_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RestoreRule.model_validate(bad)


def test_a_rule_dumps_in_the_form_it_is_written_in() -> None:
    written = rule(**MAIL_TO)
    dumped = written.model_dump()
    assert dumped["from"] == ("crm.*",) and "origins" not in dumped
    assert RestoreRule.model_validate(dumped) == written
    assert RestoreRule.model_validate_json(written.model_dump_json()) == written
