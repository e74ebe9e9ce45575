"""Where real values may go: which tokens the bridge may restore into which tool arguments.

A token remembers its entity and origins (see `sandbox.pii.vault`). Rules, in the deployment's
settings (`SANDBOX_PII__RESTORE_RULES`) or a profile's `restore_rules`, widen or narrow where
its value may be restored:

    {"entities": ["EMAIL"], "from": "crm.*", "to": "mailer.send_email", "args": ["to"]}
    {"entities": ["SECRET"], "to": "*", "action": "deny"}
    {"from": "output", "to": "crm.search_customers", "args": ["query"]}

`entities`, `from` and `to` are globs (a string or a list): entity names, origins
(`server.tool`, or `output` / `upload` for values that came from program output or files),
and target tools (`server.tool`). `args` names top-level arguments or dotted paths into
them (`message.to`; list items add no step); a name covers everything beneath it; omitted,
every argument. `action` is `allow` (the default), `approve` or `deny`.

One token going into one argument is decided per origin, then across its origins:
  - per origin: `deny` if a matching rule denies; else `approve` if one asks for approval;
    else `allow` if one allows; with no matching rule, the default: allowed back into the
    server whose result produced the value, refused everywhere else. A value from program
    output or an upload has no server, so by default it is restored nowhere.
  - across origins, the most permissive: a value two tools returned may go where either
    origin lets it.
The order of rules does not matter, and deployment and profile rules simply add up.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Action = Literal["allow", "approve", "deny"]
_RANK: dict[Action, int] = {"deny": 0, "approve": 1, "allow": 2}


class RestoreRule(BaseModel):
    """One rule: these entities, from these origins, into these tools (and arguments)."""

    # Dumped as written ("from"), so a rule read back from a dump is the same rule.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True
    )

    entities: tuple[str, ...] = Field(("*",), min_length=1, max_length=64)
    origins: tuple[str, ...] = Field(("*",), alias="from", min_length=1, max_length=64)
    to: tuple[str, ...] = Field(min_length=1, max_length=64)
    args: tuple[str, ...] | None = Field(None, min_length=1, max_length=64)
    action: Action = "allow"

    @field_validator("entities", "origins", "to", "args", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("entities", "origins", "to")
    @classmethod
    def _globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for glob in value:
            if not 0 < len(glob) <= 256 or any(c.isspace() or c == "," for c in glob):
                raise ValueError(f"bad glob {glob!r:.60}: one pattern per item, no spaces")
        return value

    @field_validator("args")
    @classmethod
    def _paths(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and any(not p or len(p) > 256 or p != p.strip(".") for p in value):
            raise ValueError("args are argument names or dotted paths ('to', 'message.to')")
        return value

    def matches(self, entity: str, origin: str, target: str, arg: str) -> bool:
        return (
            any(fnmatch.fnmatchcase(entity, g) for g in self.entities)
            and any(fnmatch.fnmatchcase(origin, g) for g in self.origins)
            and any(fnmatch.fnmatchcase(target, g) for g in self.to)
            and (self.args is None or any(covers(p, arg) for p in self.args))
        )


def covers(pattern: str, arg: str) -> bool:
    """True when an `args` entry names this argument path or one above it ('to' covers
    'to', 'message' covers 'message.to'); globs work on the whole path ('message.*')."""
    return arg == pattern or arg.startswith(pattern + ".") or fnmatch.fnmatchcase(arg, pattern)


@dataclass(frozen=True)
class Decision:
    """What may happen to one token: `allow`, `approve` (wait for a person) or `deny`."""

    action: Action
    origin: str
    """The origin that decided (the most permissive one)."""
    rule: int | None
    """The index of the rule that decided, in `RestorePolicy.rules`; None: the default."""


def _default(origin: str, server: str) -> Action:
    # A tool's value may go back to its own server; output and uploads have no server.
    return "allow" if origin.startswith(server + ".") else "deny"


class RestorePolicy:
    """Restore rules compiled for deciding; the empty policy is the default alone."""

    def __init__(self, rules: Iterable[RestoreRule] = ()) -> None:
        self.rules = tuple(rules)

    @classmethod
    def of(cls, *groups: Iterable[RestoreRule]) -> RestorePolicy:
        """One policy from several groups of rules (the deployment's, a profile's)."""
        return _compiled(tuple(r for group in groups for r in group))

    def decide(
        self, entity: str, origins: Iterable[str], server: str, tool: str, arg: str
    ) -> Decision:
        """The decision for one token of `entity` with these origins, going into argument
        `arg` (a dotted path) of `server.tool`; no origin at all is denied."""
        target = f"{server}.{tool}"
        best: Decision | None = None
        for origin in origins:
            decision = self._decide_origin(entity, origin, server, target, arg)
            if best is None or _RANK[decision.action] > _RANK[best.action]:
                best = decision
                if decision.action == "allow":
                    break
        return best or Decision("deny", "", None)

    def _decide_origin(
        self, entity: str, origin: str, server: str, target: str, arg: str
    ) -> Decision:
        found: Decision | None = None
        for i, rule in enumerate(self.rules):
            if rule.matches(entity, origin, target, arg) and (
                found is None or _RANK[rule.action] < _RANK[found.action]
            ):
                found = Decision(rule.action, origin, i)
                if rule.action == "deny":
                    break
        return found or Decision(_default(origin, server), origin, None)


@functools.lru_cache(maxsize=256)
def _compiled(rules: tuple[RestoreRule, ...]) -> RestorePolicy:
    return RestorePolicy(rules)


DEFAULT = RestorePolicy()

__all__ = ["DEFAULT", "Action", "Decision", "RestorePolicy", "RestoreRule", "covers"]
