"""Key-aware tokenization: names and addresses by key, outputSchema and field rules."""

from __future__ import annotations

import os
from typing import Any

import pytest

from sandbox.pii import FieldRule, FieldRules, MasterKeys, Tokenizer
from sandbox.pii.structured import normalize_key

KEYS = MasterKeys({"k1": os.urandom(32)}, "k1")


def tokenizer(fields: FieldRules | None = None) -> Tokenizer:
    return Tokenizer.for_session(KEYS, "s1", fields=fields)


def one(key: str, value: Any, **record: Any) -> Any:
    """The tokenized value of `key` in a record holding it (and `record`'s other fields)."""
    return tokenizer().tokenize({key: value, **record})[key]


# -- key names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "normal"),
    [
        ("customerName", "customer_name"),
        ("Customer-Name", "customer_name"),
        ("CUSTOMER_NAME", "customer_name"),
        ("customer name", "customer_name"),
        ("IPAddress", "ip_address"),
        ("addressLine1", "address_line1"),
        ("Prénom", "prenom"),
    ],
)
def test_keys_are_compared_without_case_separators_or_camel_case(key: str, normal: str) -> None:
    assert normalize_key(key) == normal


@pytest.mark.parametrize(
    "key",
    [
        "full_name", "fullName", "FullName", "first_name", "firstName", "fname", "last_name",
        "lastname", "surname", "given_name", "family_name", "middle-name", "holder",
        "account_holder", "accountHolder", "cardholder", "card_holder_name", "customer_name",
        "customerName", "contact_name", "owner_name", "patient_name", "billing_name",
        "beneficiary_name", "legal_name", "Vorname", "nachname",
    ],
)  # fmt: skip
def test_a_person_key_makes_its_value_a_person_token(key: str) -> None:
    assert one(key, "Maria José García-López") == "[PERSON_1]"


@pytest.mark.parametrize(
    "key",
    ["address", "street", "street_address", "streetAddress", "address_line1", "addressLine2",
     "home_address", "billing_address", "shipping_address", "mailing_address", "addr"],
)  # fmt: skip
def test_a_street_address_key_makes_its_value_an_address_token(key: str) -> None:
    assert one(key, "742 Evergreen Terrace, Springfield, IL 62704") == "[ADDRESS_1]"


def test_a_multi_line_address_is_one_token() -> None:
    assert one("address", "Flat 3\n12 High Street\nLondon SW1A 1AA") == "[ADDRESS_1]"


def test_lines_of_an_address_object_are_addresses_and_its_city_is_not() -> None:
    out = tokenizer().tokenize(
        {"address": {"line1": "1 Main St", "line2": "Suite 5", "city": "Austin", "zip": "78701"}}
    )
    assert out == {
        "address": {
            "line1": "[ADDRESS_1]",
            "line2": "[ADDRESS_2]",
            "city": "Austin",
            "zip": "78701",
        }
    }


@pytest.mark.parametrize(
    "key",
    ["email_address", "ip_address", "ipAddress", "mac_address", "wallet_address", "remote_addr",
     "server_address", "bind_address", "listen_address"],
)  # fmt: skip
def test_addresses_that_are_not_postal_are_not_address_tokens(key: str) -> None:
    assert one(key, "somewhere 12, over there") == "somewhere 12, over there"


@pytest.mark.parametrize(
    "key",
    ["file_name", "fileName", "filename", "tool_name", "product_name", "company_name",
     "user_name", "username", "hostname", "server_name", "project_name", "event_name", "city"],
)  # fmt: skip
def test_names_of_things_are_not_persons(key: str) -> None:
    assert one(key, "Quarterly Report") == "Quarterly Report"


def test_a_bare_name_inside_a_person_parent_is_a_person() -> None:
    out = tokenizer().tokenize({"customers": [{"name": "maria", "id": 7}], "owner": {"name": "li"}})
    assert out == {"customers": [{"name": "[PERSON_1]", "id": 7}], "owner": {"name": "[PERSON_2]"}}


def test_a_bare_name_beside_person_fields_is_a_person() -> None:
    out = tokenizer().tokenize({"name": "Bob", "email": "bob@example.com"})
    assert out == {"name": "[PERSON_1]", "email": "[EMAIL_1]"}


@pytest.mark.parametrize(
    "record",
    [
        {"product": {"name": "Ergonomic Steel Chair"}},
        {"files": [{"name": "Annual Report"}]},
        {"tool": {"name": "Search Docs"}},
        {"company": {"name": "Acme Widgets"}},
        {"name": "Ergonomic Steel Chair", "sku": "ESC-1", "price": 12.5},
        {"name": "Search Docs", "description": "x", "inputSchema": {}},
        {"name": "Main Report", "mimeType": "text/plain"},
    ],
)
def test_a_bare_name_of_a_thing_stays(record: dict[str, Any]) -> None:
    assert tokenizer().tokenize(record) == record


def test_a_bare_name_without_context_is_a_person_only_when_shaped_like_one() -> None:
    t = tokenizer()
    assert t.tokenize({"name": "Jean-Luc van der Berg"}) == {"name": "[PERSON_1]"}
    for value in ["report.pdf", "search_tools", "v1.2", "build 42", "lowercase words", "Widget"]:
        assert t.tokenize({"name": value}) == {"name": value}


@pytest.mark.parametrize(
    "value",
    ["", "   ", "N/A", "unknown", "cus_8f3k2", "Agent 007", "x" * 101, "[PERSON_4]",
     "Jane <jane@example.com>"],
)  # fmt: skip
def test_values_that_are_not_names_keep_their_pattern_scan(value: str) -> None:
    out = one("full_name", value)
    assert "[PERSON_1]" not in str(out)


def test_numbers_booleans_and_nulls_under_person_keys_stay() -> None:
    record = {"full_name": 42, "holder": True, "first_name": None, "owner": 3.5}
    assert tokenizer().tokenize(record) == record


def test_role_keys_need_a_capitalized_name() -> None:
    t = tokenizer()
    assert t.tokenize({"owner": "Grace Hopper", "author": "octocat", "contact": "ops@x.io"}) == {
        "owner": "[PERSON_1]",
        "author": "octocat",
        "contact": "[EMAIL_1]",
    }


def test_a_bare_address_is_more_than_one_word_and_never_a_host() -> None:
    t = tokenizer()
    for value in ["127.0.0.1:8080", "db.internal:5432", "localhost", "0x52908400098527886E0F70"]:
        assert t.tokenize({"address": value}) == {"address": value}
    for value in ["rue Alix Leroy", "富山県山武市轟7丁目22番5号"]:
        assert t.tokenize({"address": value})["address"].startswith("[ADDRESS_")


def test_a_name_with_a_company_form_is_not_a_person() -> None:
    t = tokenizer()
    for value in ["Lane Ltd", "Baum GmbH", "Hotel Iberia S.L.", "Dulewicz Sp. z o.o."]:
        assert t.tokenize({"customer_name": value}) == {"customer_name": value}


def test_lower_case_honorifics_and_particles_do_not_hide_a_name() -> None:
    t = tokenizer()
    assert t.tokenize({"name": "pani Anna Maria Nurek"}) == {"name": "[PERSON_1]"}
    assert t.tokenize({"name": "Constance Dos Santos de la Dumas"}) == {"name": "[PERSON_2]"}


def test_scalars_in_a_list_share_its_key() -> None:
    out = tokenizer().tokenize({"authors": ["Ada Lovelace", "Alan Turing"]})
    assert out == {"authors": ["[PERSON_1]", "[PERSON_2]"]}


def test_surrounding_whitespace_stays_outside_the_token() -> None:
    assert one("first_name", "  Maria \n") == "  [PERSON_1] \n"


def test_names_from_other_scripts_are_persons() -> None:
    t = tokenizer()
    assert t.tokenize({"full_name": "山田 太郎", "name": "王伟", "email": "w@x.cn"})["name"] == (
        "[PERSON_2]"
    )


def test_the_same_name_gets_the_same_token_and_restores() -> None:
    t = tokenizer()
    out = t.tokenize([{"holder": "Maria Keller"}, {"customer_name": "Maria Keller"}])
    assert out == [{"holder": "[PERSON_1]"}, {"customer_name": "[PERSON_1]"}]
    assert t.detokenize(out) == [{"holder": "Maria Keller"}, {"customer_name": "Maria Keller"}]


def test_key_rules_can_be_switched_off_or_narrowed() -> None:
    record = {"full_name": "Maria Keller", "street": "Hauptstraße 5", "email": "m@k.de"}
    off = tokenizer(FieldRules(keys=False)).tokenize(record)
    assert off == {**record, "email": "[EMAIL_1]"}
    persons = tokenizer(FieldRules(entities=["PERSON"])).tokenize(record)
    assert persons == {"full_name": "[PERSON_1]", "street": "Hauptstraße 5", "email": "[EMAIL_1]"}


# -- outputSchema ---------------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "properties": {
        "owner": {"type": "string", "description": "Customer full name"},
        "loc": {"type": "string", "title": "Mailing address"},
        "label": {"type": "string", "x-pii": "PERSON"},
        "name": {"type": "string", "x-pii": False},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Row"}},
    },
    "$defs": {"Row": {"type": "object", "properties": {"who": {"title": "Name of the patient"}}}},
}


def test_schema_titles_and_descriptions_mark_fields() -> None:
    value = {"owner": "octocat", "loc": "Somewhere 9", "items": [{"who": "grace"}]}
    out = tokenizer().tokenize(value, schema=SCHEMA)
    assert out == {"owner": "[PERSON_1]", "loc": "[ADDRESS_1]", "items": [{"who": "[PERSON_2]"}]}


def test_schema_x_pii_marks_a_field_or_turns_key_rules_off() -> None:
    out = tokenizer().tokenize(
        {"label": "anything 123", "name": "Grace Hopper", "email": "g@x.io"}, schema=SCHEMA
    )
    assert out == {"label": "[PERSON_1]", "name": "Grace Hopper", "email": "[EMAIL_1]"}


def test_a_schema_for_a_wrapped_result_describes_the_unwrapped_value() -> None:
    schema = {
        "type": "object",
        "properties": {"result": {"type": "object", "properties": {"o": {"title": "Surname"}}}},
        "required": ["result"],
    }
    assert tokenizer().tokenize({"o": "keller"}, schema=schema) == {"o": "[PERSON_1]"}


def test_a_hostile_schema_is_walked_with_bounded_effort() -> None:
    loop = {"$ref": "#/$defs/A", "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}}
    deep: dict[str, Any] = {"title": "Full name"}
    for _ in range(50):
        deep = {"anyOf": [deep]}
    t = tokenizer()
    assert t.tokenize({"x": "Ada"}, schema=loop) == {"x": "Ada"}
    assert t.tokenize({"x": "Ada"}, schema={"properties": {"x": deep}}) == {"x": "Ada"}
    assert t.tokenize({"x": "Ada"}, schema={"properties": "nonsense"}) == {"x": "Ada"}


# -- field rules ----------------------------------------------------------------------------------


def test_a_field_rule_marks_a_path_for_matching_tools_only() -> None:
    rules = FieldRules([FieldRule("customer.owner", "PERSON", tools="crm.*")])
    value = {"customer": {"owner": "jdoe"}}
    assert tokenizer(rules).tokenize(value, origin="crm.get_customer") == {
        "customer": {"owner": "[PERSON_1]"}
    }
    assert tokenizer(rules).tokenize(value, origin="files.list") == value
    assert tokenizer(rules).tokenize(value) == value


def test_field_rule_paths_skip_lists_and_take_wildcards() -> None:
    rules = FieldRules(
        [
            FieldRule("rows.ownerRef", "PERSON"),
            FieldRule("**.postcode", "ADDRESS"),
            FieldRule("meta.*.tag", "LABEL"),
        ]
    )
    value = {
        "rows": [{"owner_ref": "jd"}, {"owner_ref": "mk"}],
        "a": {"b": {"postcode": "SW1A 1AA"}},
        "meta": {"x": {"tag": "t1"}},
    }
    assert tokenizer(rules).tokenize(value) == {
        "rows": [{"owner_ref": "[PERSON_1]"}, {"owner_ref": "[PERSON_2]"}],
        "a": {"b": {"postcode": "[ADDRESS_1]"}},
        "meta": {"x": {"tag": "[LABEL_1]"}},
    }


def test_a_field_rule_covers_everything_below_its_path_and_numbers_too() -> None:
    rules = FieldRules([FieldRule("patient", "PERSON"), FieldRule("account", "ACCOUNT")])
    out = tokenizer(rules).tokenize({"patient": {"first": "ada", "ids": [7]}, "account": 12})
    assert out == {
        "patient": {"first": "[PERSON_1]", "ids": ["[PERSON_2]"]},
        "account": "[ACCOUNT_1]",
    }


def test_a_field_rule_without_entity_turns_key_rules_off_but_not_patterns() -> None:
    rules = FieldRules([FieldRule("**.name", None, tools="catalog.*")])
    value = {"name": "Grace Hopper", "owner": {"name": "Ada King", "mail": "a@k.io"}}
    assert tokenizer(rules).tokenize(value, origin="catalog.list") == {
        "name": "Grace Hopper",
        "owner": {"name": "Ada King", "mail": "[EMAIL_1]"},
    }


def test_the_last_matching_field_rule_wins() -> None:
    rules = FieldRules([FieldRule("**", None), FieldRule("who", "PERSON")])
    out = tokenizer(rules).tokenize({"who": "x", "full_name": "Ada King"})
    assert out == {"who": "[PERSON_1]", "full_name": "Ada King"}


def test_rules_apply_inside_json_text_from_its_own_root() -> None:
    rules = FieldRules([FieldRule("customer.owner", "PERSON")])
    out = tokenizer(rules).tokenize([{"type": "text", "text": '{"customer": {"owner": "jd"}}'}])
    assert out == [{"type": "text", "text": '{"customer": {"owner": "[PERSON_1]"}}'}]


def test_settings_field_rules_validate_their_entity() -> None:
    from pydantic import ValidationError

    from sandbox.settings import PiiSettings

    cfg = PiiSettings(fields=[{"tools": "crm.*", "path": "customer.owner", "entity": "PERSON"}])
    assert cfg.fields[0].entity == "PERSON" and cfg.structured
    for bad in ({"path": "x", "entity": "person"}, {"path": "x"}, {"path": "", "entity": None}):
        with pytest.raises(ValidationError):
            PiiSettings(fields=[bad])


def test_the_deployments_field_rules_reach_every_session_tokenizer() -> None:
    from sandbox.core.assembly import pii_setup
    from sandbox.settings import PiiSettings

    cfg = PiiSettings(
        fields=[{"tools": "crm.*", "path": "deal.rep", "entity": "PERSON"}], entities=["EMAIL"]
    )
    parts = pii_setup(cfg)
    assert parts is not None
    t = Tokenizer.for_session(parts[0], "s1", *parts[1:])
    value = {"deal": {"rep": "jd"}, "full_name": "Ada King", "mail": "a@k.io"}
    assert t.tokenize(value, origin="crm.get_deal") == {
        "deal": {"rep": "[PERSON_1]"},
        "full_name": "Ada King",  # PERSON is not among the entities this deployment chose
        "mail": "[EMAIL_1]",
    }
    off = pii_setup(PiiSettings(structured=False))
    assert off is not None and not off[2].keys


def test_a_constant_under_a_role_key_is_not_a_name() -> None:
    tok = Tokenizer.for_session(MasterKeys({"k": b"k" * 32}, "k"), "s")
    out = tok.tokenize({"attach_self_parent": "EPERM", "owner": "ADMIN", "manager": "Joan"})
    assert out == {"attach_self_parent": "EPERM", "owner": "ADMIN", "manager": "[PERSON_1]"}
