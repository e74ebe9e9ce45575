"""A vault's tokens remember where their values came from, and a vault has a budget."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from sandbox.pii.tokenizer import TOKEN_PATTERN
from sandbox.pii.vault import MAX_ORIGINS, MasterKeys, TokenInfo, Vault, VaultBudget, redaction

KEYS = MasterKeys({"k1": os.urandom(32)}, "k1")


def vault(**budget: int) -> Vault:
    return Vault(KEYS, "s1", VaultBudget(**budget) if budget else None)


def test_a_token_remembers_its_entity_and_the_tool_whose_result_held_it() -> None:
    v = vault()
    token = v.token_for("EMAIL", "maria@example.com", origin="crm.get_customer")
    assert v.info(token) == TokenInfo("EMAIL", ("crm.get_customer",))
    assert v.info("[EMAIL_9]") is None


def test_a_value_without_a_named_origin_comes_from_output() -> None:
    v = vault()
    assert v.info(v.token_for("PHONE", "+1 415 555 0132")) == TokenInfo("PHONE", ("output",))


def test_the_same_value_from_two_tools_has_both_origins_once_each() -> None:
    v = vault()
    a = v.token_for("EMAIL", "maria@example.com", origin="crm.get_customer")
    b = v.token_for("EMAIL", "maria@example.com", origin="billing.get_invoice")
    c = v.token_for("EMAIL", "maria@example.com", origin="crm.get_customer")
    assert a == b == c
    assert v.info(a) == TokenInfo("EMAIL", ("crm.get_customer", "billing.get_invoice"))


def test_origins_per_token_are_bounded() -> None:
    v = vault()
    for i in range(MAX_ORIGINS + 10):
        token = v.token_for("EMAIL", "maria@example.com", origin=f"s{i}.t")
    info = v.info(token)
    assert info is not None and len(info.origins) == MAX_ORIGINS


def test_a_value_echoed_by_a_server_it_was_restored_into_gains_no_origin_there() -> None:
    # crm's email sent to mailer and listed back by mailer is still crm data: otherwise the
    # default rule (back to its own server) would let it into any mailer argument.
    v = vault()
    token = v.token_for("EMAIL", "maria@example.com", origin="crm.get_customer")
    v.restored_into(token, "mailer")
    v.token_for("EMAIL", "maria@example.com", origin="mailer.list_outbox")
    v.token_for("EMAIL", "maria@example.com", origin="billing.get_invoice")
    assert v.info(token) == TokenInfo("EMAIL", ("crm.get_customer", "billing.get_invoice"))


def test_past_the_entry_budget_new_values_are_redacted_and_old_ones_keep_their_tokens() -> None:
    v = vault(entries=2)
    a = v.token_for("EMAIL", "a@example.com")
    v.token_for("EMAIL", "b@example.com")
    assert v.token_for("EMAIL", "c@example.com") == "[EMAIL_REDACTED]" == redaction("EMAIL")
    assert v.token_for("PHONE", "+1 415 555 0132") == "[PHONE_REDACTED]"
    assert v.token_for("EMAIL", "a@example.com", origin="crm.x") == a  # known: still its token
    assert len(v) == 2 and v.redacted == 2


def test_past_the_byte_budget_new_values_are_redacted() -> None:
    v = vault(bytes=20)
    v.token_for("EMAIL", "abcdef@example.com")  # 18 bytes
    assert v.token_for("EMAIL", "xyz@example.com") == "[EMAIL_REDACTED]"
    assert v.bytes == 18


def test_a_redaction_marker_is_not_a_token_and_restores_to_nothing() -> None:
    v = vault(entries=1)
    v.token_for("EMAIL", "a@example.com")
    marker = v.token_for("EMAIL", "b@example.com")
    assert not TOKEN_PATTERN.fullmatch(marker)
    assert v.value_for(marker) is None and v.info(marker) is None
    assert "b@example.com" not in repr(vars(v))


def test_a_full_vault_is_reported_once() -> None:
    calls: list[int] = []
    v = Vault(KEYS, "s1", VaultBudget(entries=1), on_full=lambda vv: calls.append(len(vv)))
    for i in range(5):
        v.token_for("EMAIL", f"u{i}@example.com")
    assert calls == [1] and v.redacted == 4


def test_the_budget_holds_when_many_threads_add_values_at_once() -> None:
    v = vault(entries=500)
    barrier = threading.Barrier(8)

    def add(worker: int) -> list[str]:
        barrier.wait(10)
        return [v.token_for("EMAIL", f"w{worker}-{i}@example.com") for i in range(200)]

    with ThreadPoolExecutor(8) as pool:
        tokens = [t for batch in pool.map(add, range(8)) for t in batch]
    issued = [t for t in tokens if t != "[EMAIL_REDACTED]"]
    assert len(v) == 500 == len(issued) == len(set(issued))
    assert v.redacted == 8 * 200 - 500


def test_the_default_budget_is_bounded() -> None:
    budget = VaultBudget()
    assert 0 < budget.entries <= 1_000_000 and 0 < budget.bytes <= 64 * 1024 * 1024


def test_a_sessions_vault_takes_the_deployments_budget_and_reports_once_on_the_record() -> None:
    from sandbox.pii.restore import limit_vault
    from sandbox.settings import PiiSettings

    class Records:
        def __init__(self) -> None:
            self.put_: list[tuple[str, dict[str, object]]] = []

        def put(self, event: str, **fields: object) -> None:
            self.put_.append((event, fields))

    v, records = vault(), Records()
    pii = PiiSettings(vault_entries=1, vault_bytes=4096)
    limit_vault(v, pii, records, "alice")  # type: ignore[arg-type]  # an AuditQueue's put only
    v.token_for("EMAIL", "a@example.com")
    assert v.token_for("EMAIL", "secret.b@example.com") == "[EMAIL_REDACTED]"
    v.token_for("EMAIL", "c@example.com")
    assert records.put_ == [
        ("pii_vault_full", {"owner": "alice", "session": "s1", "entries": 1, "bytes": 13})
    ]
