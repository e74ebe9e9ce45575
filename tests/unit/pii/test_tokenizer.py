"""Tokenization: round trips, determinism, isolation between sessions, and the vault's crypto."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.exceptions import InvalidInputError
from sandbox.pii import TOKEN_PATTERN, Finding, MasterKeys, Tokenizer, Vault, VaultError, detect

KEYS = MasterKeys({"k1": os.urandom(32)}, "k1")

emails = st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8})?@[a-z]{2,10}\.(com|org|de|io)", fullmatch=True)
phones = st.sampled_from(
    ["+1 415 555 0132", "+49 30 901820", "(415) 555-0199", "+33 1 42 68 53 00"]
)
ibans = st.sampled_from(
    ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606"]
)
cards = st.sampled_from(["4111 1111 1111 1111", "5555555555554444", "378282246310005"])
pii = st.one_of(emails, phones, ibans, cards)
filler = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="[]@"), max_size=30
)
documents = st.lists(st.tuples(filler, pii), min_size=1, max_size=6).map(
    lambda parts: " ".join(f"{a} {b} " for a, b in parts)
)


def tokenizer(session: str = "s1") -> Tokenizer:
    return Tokenizer.for_session(KEYS, session)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_detokenize_restores_exactly_what_tokenize_replaced(doc: str) -> None:
    t = tokenizer()
    assert t.detokenize(t.tokenize(doc)) == doc


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_no_detected_value_survives_tokenization(doc: str) -> None:
    tokenized = tokenizer().tokenize(doc)
    assert detect(tokenized) == []
    for f in detect(doc):
        assert doc[f.start : f.end] not in tokenized


@given(st.lists(pii, min_size=1, max_size=5))
def test_tokens_are_deterministic_within_a_session(values: list[str]) -> None:
    t = tokenizer()
    first = [t.tokenize(v) for v in values]
    assert [t.tokenize(v) for v in values] == first
    assert len(set(first)) == len(set(values))


def test_another_sessions_tokens_never_resolve_to_its_values() -> None:
    a, b = tokenizer("a"), tokenizer("b")
    token = a.tokenize("maria@example.com")
    assert token == "[EMAIL_1]"
    assert b.detokenize(token) == token  # unknown in b: left as it is
    b.tokenize("bob@example.org")
    assert b.detokenize(token) == "bob@example.org"  # b's own first email, never a's


def test_guessed_or_malformed_tokens_stay_literal() -> None:
    t = tokenizer()
    t.tokenize("maria@example.com")
    text = "[EMAIL_2] [EMAIL_0] [email_1] [EMAIL_1 ] [PHONE_1]"
    assert t.detokenize(text) == text


def test_nested_json_is_tokenized_everywhere_including_keys() -> None:
    t = tokenizer()
    value = {
        "maria@example.com": [{"phone": "+1 415 555 0132", "n": 3, "ok": True, "none": None}],
        "t": ("x",),
    }
    out = t.tokenize(value)
    assert out == {
        "[EMAIL_1]": [{"phone": "[PHONE_1]", "n": 3, "ok": True, "none": None}],
        "t": ["x"],
    }
    assert t.detokenize(out) == {**value, "t": ["x"]}


def test_absurd_nesting_is_a_typed_error_not_a_crash() -> None:
    deep: object = "x"
    for _ in range(1000):
        deep = [deep]
    with pytest.raises(InvalidInputError):
        tokenizer().tokenize(deep)


def test_a_vault_record_with_a_flipped_bit_fails_authentication() -> None:
    t = tokenizer()
    token = t.tokenize("maria@example.com")
    nonce, ct = t.vault._records[token]
    t.vault._records[token] = (nonce, bytes([ct[0] ^ 1]) + ct[1:])
    with pytest.raises(VaultError):
        t.detokenize(token)


def test_a_vault_record_moved_to_another_session_does_not_decrypt() -> None:
    a, b = tokenizer("a"), tokenizer("b")
    token = a.tokenize("maria@example.com")
    b.vault._records[token] = a.vault._records[token]
    with pytest.raises(VaultError):
        b.detokenize(token)


def test_key_rotation_keeps_old_sessions_readable_until_the_key_is_retired() -> None:
    keys = MasterKeys({"v1": os.urandom(32)}, "v1")
    old = Tokenizer.for_session(keys, "old")
    token = old.tokenize("maria@example.com")
    keys = MasterKeys({"v1": keys._keys["v1"], "v2": os.urandom(32)}, "v2")
    old.vault._keys = keys
    new = Tokenizer.for_session(keys, "new")
    assert new.vault.kid == "v2" and old.vault.kid == "v1"
    assert old.detokenize(token) == "maria@example.com"
    keys.retire("v1")
    with pytest.raises(VaultError):
        old.detokenize(token)


def test_destroying_a_session_vault_crypto_shreds_it() -> None:
    t = tokenizer()
    token = t.tokenize("maria@example.com")
    t.destroy()
    assert t.detokenize(token) == token


def test_tokens_are_bracketed_upper_case_entity_names() -> None:
    t = tokenizer()
    out = t.tokenize("maria@example.com 4111 1111 1111 1111 93.184.216.34 AKIAIOSFODNN7EXAMPLE")
    assert out == "[EMAIL_1] [CREDIT_CARD_1] [IP_ADDRESS_1] [SECRET_1]"
    assert all(TOKEN_PATTERN.fullmatch(tok) for tok in out.split())


def test_the_vault_never_holds_plaintext() -> None:
    t = tokenizer()
    t.tokenize("maria@example.com")
    assert b"maria" not in repr(vars(t.vault)).encode()
    assert all(b"maria" not in ct for _, ct in t.vault._records.values())


# -- JSON stays JSON ----------------------------------------------------------------------------


def test_json_text_is_tokenized_as_json_and_still_parses() -> None:
    t = tokenizer()
    text = json.dumps({"card": "4111 1111 1111 1111", "note": 'say "hi" to maria@example.com'})
    out = t.tokenize(text)
    assert json.loads(out) == {"card": "[CREDIT_CARD_1]", "note": 'say "hi" to [EMAIL_1]'}
    assert json.loads(t.detokenize(out)) == json.loads(text)


def test_keys_inside_json_text_mark_its_values() -> None:
    out = tokenizer().tokenize('[{"full_name": "Maria Keller", "street": "Hauptstraße 5"}]')
    assert json.loads(out) == [{"full_name": "[PERSON_1]", "street": "[ADDRESS_1]"}]


def test_json_text_nested_in_a_json_field_is_tokenized_at_every_level() -> None:
    inner = json.dumps({"holder": "Ada King", "phone": 4155550132})
    outer = json.dumps({"payload": inner, "ok": True}, indent=2)
    out = tokenizer().tokenize({"content": [{"type": "text", "text": outer}]})
    text = out["content"][0]["text"]
    assert "\n" in text  # indented JSON stays indented
    assert json.loads(json.loads(text)["payload"]) == {"holder": "[PERSON_1]", "phone": "[PHONE_1]"}


def test_json_text_without_pii_comes_back_byte_for_byte() -> None:
    text = '{ "a" : [1, 2.50, "x"],\n  "b": {"c": null} }'
    assert tokenizer().tokenize(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "{not json maria@example.com}",
        "[EMAIL_1] maria@example.com [x]",
        '{"a": 1} maria@example.com',
    ],
)
def test_text_that_only_looks_like_json_is_scanned_as_text(text: str) -> None:
    out = tokenizer().tokenize(text)
    assert "maria@example.com" not in out and "[EMAIL_" in out


def test_json_text_too_deep_to_walk_is_still_scanned_as_text() -> None:
    text = "[" * 300 + '"maria@example.com"' + "]" * 300
    out = tokenizer().tokenize(text)
    assert out == "[" * 300 + '"[EMAIL_1]"' + "]" * 300


def test_json_text_counts_toward_its_containers_depth_and_past_the_limit_is_text() -> None:
    inner = "[" * 10 + '"maria@example.com"' + "]" * 10
    deep: object = inner
    for _ in range(250):
        deep = [deep]
    out = tokenizer().tokenize(deep)
    for _ in range(250):
        assert isinstance(out, list)
        out = out[0]
    assert out == "[" * 10 + '"[EMAIL_1]"' + "]" * 10


# -- numbers ------------------------------------------------------------------------------------


def test_phone_ssn_and_card_numbers_sent_as_json_numbers_become_tokens() -> None:
    t = tokenizer()
    value = {"phone": 4155550132, "mobileNumber": 4930901820.0, "ssn": 123456789,
             "cardNumber": 5555555555554444, "other": 4111111111111111}  # fmt: skip
    out = t.tokenize(value)
    assert out == {
        "phone": "[PHONE_1]",
        "mobileNumber": "[PHONE_2]",
        "ssn": "[US_SSN_1]",
        "cardNumber": "[CREDIT_CARD_1]",
        "other": "[CREDIT_CARD_2]",
    }
    assert t.detokenize(out["phone"]) == "4155550132"


def test_ordinary_numbers_stay_numbers() -> None:
    value = {"id": 4155550132, "count": 123456789, "phone_id": 1234567, "phone": 12, "n": 7.5,
             "total": 1e300, "ok": True, "big": 10**40, "neg": -4111111111111111}  # fmt: skip
    out = tokenizer().tokenize(value)
    assert out == {**value, "neg": "-[CREDIT_CARD_1]"}


def test_numbers_in_json_text_are_scanned_too() -> None:
    out = tokenizer().tokenize('{"ssn": 123456789, "amount": 12}')
    assert json.loads(out) == {"ssn": "[US_SSN_1]", "amount": 12}


def test_digit_strings_under_phone_and_ssn_keys_are_tokens_though_patterns_miss_them() -> None:
    out = tokenizer().tokenize({"tel": "4155550132", "ssn": "123456789", "phone": "call me"})
    assert out == {"tel": "[PHONE_1]", "ssn": "[US_SSN_1]", "phone": "call me"}


# -- known values and origins -------------------------------------------------------------------


def test_known_values_are_replaced_wherever_they_occur_before_detection() -> None:
    t = tokenizer()
    email = t.tokenize("alice@x.com")
    known = {"alice@x.com": email, "Alice Keller": "[PERSON_7]"}
    out = t.tokenize(
        {"note": "note:alice@x.comXYZ by ALICE KELLER", "echo": "alice@x.com"}, known=known
    )
    assert out == {"note": f"note:{email}XYZ by [PERSON_7]", "echo": email}


def test_known_values_are_replaced_in_keys_numbers_and_json_text() -> None:
    known = {"4155550132": "[PHONE_3]", 'O\'Brien "Jr"': "[PERSON_2]", "k@x.io": "[EMAIL_5]"}
    text = json.dumps({"by": 'O\'Brien "Jr"', "k@x.io": 1})
    out = tokenizer().tokenize({"n": 4155550132, "t": text}, known=known)
    assert out["n"] == "[PHONE_3]"
    assert json.loads(out["t"]) == {"by": "[PERSON_2]", "[EMAIL_5]": 1}


def test_short_known_values_are_replaced_only_where_they_stand_alone() -> None:
    out = tokenizer().tokenize("Li wrote Linux; li.", known={"Li": "[PERSON_1]", "": "[X_1]"})
    assert out == "[PERSON_1] wrote Linux; [PERSON_1]."


def test_a_value_holding_a_known_token_is_not_wrapped_into_a_name_token() -> None:
    out = tokenizer().tokenize({"full_name": "Ada King"}, known={"Ada": "[PERSON_9]"})
    assert out == {"full_name": "[PERSON_9] King"}


def test_the_origin_of_a_result_is_recorded_with_its_tokens() -> None:
    t = tokenizer()
    t.tokenize({"holder": "Ada King", "mail": "a@k.io"}, origin="crm.get_customer")
    info = t.vault.info("[PERSON_1]")
    assert info is not None and info.origins == ("crm.get_customer",)
    info = t.vault.info("[EMAIL_1]")
    assert info is not None and info.origins == ("crm.get_customer",)


def test_tokenize_still_takes_one_positional_value() -> None:
    t = tokenizer()
    assert t.tokenize(("maria@example.com", 3)) == ["[EMAIL_1]", 3]
    assert t.issued == 1


# -- one scan for the strings of a value ---------------------------------------------------------


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(documents, min_size=1, max_size=8))
def test_strings_scanned_together_come_out_as_if_scanned_one_by_one(docs: list[str]) -> None:
    together, alone = tokenizer(), tokenizer()
    assert together.tokenize(docs) == [alone.tokenize(d) for d in docs]
    assert together.issued == alone.issued


@pytest.mark.parametrize(
    "neighbours",
    [
        ["Tel:", "0493377876"],
        ["phone\n", "609 141 777"],
        ["name,phone\nAda,", "0114 496 0825"],
        ["Version ", "10.0.1.2"],
        ["maria@", "example.com"],
        ["4111 1111", "1111 1111"],
    ],
)
def test_one_string_is_never_context_for_its_neighbour(neighbours: list[str]) -> None:
    together, alone = tokenizer(), tokenizer()
    assert together.tokenize(neighbours) == [alone.tokenize(s) for s in neighbours]


def test_a_finding_across_two_strings_sends_them_to_scans_of_their_own() -> None:
    class Greedy:
        """Claims the whole text as one finding, whatever it is."""

        def __init__(self) -> None:
            self.seen: list[str] = []

        def detect(self, text: str) -> list[Finding]:
            self.seen.append(text)
            return [Finding(0, len(text), "SECRET", text)]

    greedy = Greedy()
    t = Tokenizer(Vault(KEYS, "s1"), greedy)  # type: ignore[arg-type]
    assert t.tokenize(["a", "b", 5]) == ["[SECRET_1]", "[SECRET_2]", 5]
    assert greedy.seen[1:] == ["a", "b"]


def test_long_strings_are_scanned_on_their_own() -> None:
    long = "x " * 40_000 + "maria@example.com"
    out = tokenizer().tokenize({"a": long, "b": "bob@example.org"})
    assert out == {"a": "x " * 40_000 + "[EMAIL_1]", "b": "[EMAIL_2]"}


def test_findings_are_what_the_sessions_detector_finds() -> None:
    text = "mail maria@example.com now"
    assert [(f.start, f.end, f.entity) for f in tokenizer().findings(text)] == [(5, 22, "EMAIL")]


@pytest.mark.parametrize(
    "text",
    [
        '{"email": "maria@example.com", "n": [1, 2]}\n',
        '{"email":"maria@example.com","n":[1,2]}',
        '{\n    "email": "maria@example.com",\n    "n": 1\n}\n',
        '  [{"email": "maria@example.com"}]  ',
    ],
)
def test_json_text_is_written_back_the_way_it_was_written(text: str) -> None:
    tok = Tokenizer.for_session(MasterKeys({"k": b"k" * 32}, "k"), "s")
    out = tok.tokenize(text)
    assert out == text.replace("maria@example.com", "[EMAIL_1]")
