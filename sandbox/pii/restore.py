"""Tokens in a tool call's arguments turned back into real values, where the policy allows.

    restore(vault, policy, server, tool, args) -> Restored | RestoreRefusal

Every token of the session's vault in the arguments (values and keys, at any depth) is
decided by the `RestorePolicy` before any value is decrypted. If one may not go there, the
whole call is refused: nothing is restored, and the refusal names each token's entity,
origins and argument, never its value. Token-shaped text the vault does not know stays as
it is. A restore that needs approval is a refusal too, until a person approves it: the
bridge then calls `restore` again with those tokens in `approved`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sandbox.exceptions import InvalidInputError
from sandbox.pii.policy import RestorePolicy
from sandbox.pii.tokenizer import TOKEN_PATTERN
from sandbox.pii.vault import Vault, VaultBudget

if TYPE_CHECKING:  # settings import this package's policy module: no cycle at run time
    from sandbox.audit_queue import AuditQueue
    from sandbox.settings import PiiSettings

MAX_DEPTH = 256
MAX_BLOCKED = 64
"""Blocked tokens named in one refusal; more are counted, not listed."""


@dataclass(frozen=True)
class Blocked:
    """One token that may not be restored where the call sends it."""

    token: str
    entity: str
    origins: tuple[str, ...]
    arg: str
    """The argument's dotted path ('to', 'message.cc')."""
    action: Literal["approve", "deny"]


@dataclass(frozen=True)
class Restored:
    """The arguments with real values, and which values replaced which tokens."""

    args: dict[str, Any]
    pairs: tuple[tuple[str, str], ...] = ()
    """(value, token) for every token restored, each once."""

    def known(self) -> dict[str, str]:
        """Value → token: what the call's result and errors must turn back into tokens."""
        return dict(self.pairs)


@dataclass(frozen=True)
class RestoreRefusal:
    """The call may not go ahead: some tokens may not be restored into it."""

    server: str
    tool: str
    blocked: tuple[Blocked, ...]
    more: int = 0
    """Blocked tokens beyond those listed."""

    @property
    def needs_approval(self) -> bool:
        """Every blocked token only waits for a person's approval (none is denied)."""
        return all(b.action == "approve" for b in self.blocked)

    def message(self) -> str:
        """What the code in the box is told: tokens, entities, origins; never a value."""
        first = self.blocked[0]
        why = "needs approval" if self.needs_approval else "is not allowed by the restore policy"
        text = (
            f"restoring {first.token} ({first.entity} from {_origins(first)}) into "
            f"{self.server}.{self.tool} argument {first.arg!r} {why}"
        )
        others = len(self.blocked) - 1 + self.more
        if others:
            text += f" (and {others} more)"
        if not self.needs_approval:
            text += "; by default a value goes back only to the server that returned it"
        return text

    def records(self) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
        """Audit fields (few distinct values, aggregated on) and a sample per blocked token."""
        for b in self.blocked:
            yield (
                {
                    "entity": b.entity,
                    "origin": _origins(b)[:256],
                    "to": f"{self.server}.{self.tool}"[:256],
                    "action": b.action,
                },
                {"token": b.token[:48], "arg": b.arg[:128]},
            )


def _origins(b: Blocked) -> str:
    return " or ".join(b.origins) or "nowhere"


@dataclass
class _Walk:
    vault: Vault
    policy: RestorePolicy
    server: str
    tool: str
    approved: Collection[tuple[str, str]]
    pairs: dict[str, str] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    blocked: list[Blocked] = field(default_factory=list)
    more: int = 0

    def value(self, obj: Any, path: str, depth: int) -> Any:
        if isinstance(obj, str):
            return self.text(obj, path)
        if depth > MAX_DEPTH:
            raise InvalidInputError(f"value nests deeper than {MAX_DEPTH} levels")
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                inner = f"{path}.{k}" if path else str(k)
                out[self.value(k, inner, depth + 1)] = self.value(v, inner, depth + 1)
            return out
        if isinstance(obj, list | tuple):
            return [self.value(v, path, depth + 1) for v in obj]
        return obj

    def text(self, text: str, path: str) -> str:
        if "[" not in text:
            return text
        return TOKEN_PATTERN.sub(lambda m: self.token(m.group(), path), text)

    def token(self, token: str, path: str) -> str:
        info = self.vault.info(token)
        if info is None:
            return token  # not this session's: left as it is
        if (token, path) not in self.approved:
            decision = self.policy.decide(info.entity, info.origins, self.server, self.tool, path)
            if decision.action != "allow":
                if len(self.blocked) < MAX_BLOCKED:
                    self.blocked.append(
                        Blocked(token, info.entity, info.origins, path, decision.action)
                    )
                else:
                    self.more += 1
                return token
        if self.blocked:
            return token  # refused anyway: decrypt nothing more
        value = self.vault.value_for(token)
        if value is None:
            return token
        self.pairs.setdefault(value, token)
        self.tokens.add(token)
        return value


def restore(
    vault: Vault,
    policy: RestorePolicy,
    server: str,
    tool: str,
    args: dict[str, Any],
    approved: Collection[tuple[str, str]] = (),
) -> Restored | RestoreRefusal:
    """The call's arguments with real values where `policy` allows every token, or why not.

    `approved` holds (token, arg) pairs a person approved for this call. Values restored are
    noted in the vault as sent to `server` (see `Vault.restored_into`).

    Raises:
        InvalidInputError: the arguments nest deeper than 256 levels.
        VaultError: a vault record does not decrypt.
    """
    walk = _Walk(vault, policy, server, tool, approved)
    restored = walk.value(args, "", 0)
    if walk.blocked:
        return RestoreRefusal(server, tool, tuple(walk.blocked), walk.more)
    for token in walk.tokens:
        vault.restored_into(token, server)
    return Restored(restored, tuple(walk.pairs.items()))


def limit_vault(vault: Vault, pii: PiiSettings, records: AuditQueue, owner: str) -> None:
    """Give a session's vault the deployment's budget; its filling up goes on the record once
    (`pii_vault_full`), and the values redacted after that are counted on the vault."""

    def full(v: Vault) -> None:
        records.put("pii_vault_full", owner=owner, session=v.session, entries=len(v), bytes=v.bytes)

    vault.limit(VaultBudget(pii.vault_entries, pii.vault_bytes), full)


__all__ = ["MAX_BLOCKED", "Blocked", "RestoreRefusal", "Restored", "limit_vault", "restore"]
