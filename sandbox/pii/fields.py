"""What a deployment's field rules and a tool's outputSchema say about the fields of its
results; they win over key names (`sandbox.pii.structured`).

A field rule (`pii.fields` in the settings) names a path from the root of a result, or of a
JSON text inside it: dot-separated keys compared normalized, `*` for any one key, `**` for any
number of them; list items add no step. It applies to results whose `server.tool` matches its
`tools` glob, to the value at its path and everything below it; when several match, the last
one wins. Entity None means "none of the key-based entities here" (patterns still run).
In a schema, `"x-pii": "PERSON"` (or false) is as strong as a rule; otherwise a property's
title and description count like a key name ("Customer full name", "Mailing address").
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.pii.structured import (
    ADDRESS,
    KEY_ENTITIES,
    OFF,
    PERSON,
    RULE,
    STRONG,
    Hint,
    key_hint,
    normalize_key,
)


@dataclass(frozen=True)
class FieldRule:
    """One field of a tool's results holds `entity` (`PiiFieldRule` in the settings)."""

    path: str
    entity: str | None
    tools: str = "*"


_WHO = (
    r"(?:customer|client|contact|person|patient|employee|recipient|sender|beneficiary|owner|"
    r"holder|member|applicant|guest|passenger|student|author|payee|payer|signer)"
)
_SCHEMA_PERSON = re.compile(
    r"\b(?:full|first|last|given|family|middle|maiden|legal|sur|fore)[ -]?name\b|\bsurname\b"
    rf"|\b(?:card|account|policy)[ -]?holder\b|\b{_WHO}(?:'s)? (?:full |legal )?name\b"
    rf"|\bname of (?:the |a |an )?{_WHO}\b",
    re.IGNORECASE,
)
_SCHEMA_ADDRESS = re.compile(
    r"\b(?:street|postal|mailing|home|billing|shipping|residential|delivery|physical)"
    r"[ -]address\b|\baddress line\b",
    re.IGNORECASE,
)
_MAX_REFS = 16


def schema_hint(schema: Mapping[str, Any] | None, context: str = "") -> Hint | None:
    """What a property's schema says: `x-pii` (an entity name, or false/null for none), then
    its title and description."""
    if not schema:
        return None
    if "x-pii" in schema:
        mark = schema["x-pii"]
        if isinstance(mark, str) and re.fullmatch(r"[A-Z][A-Z_]{1,30}", mark):
            return Hint(mark, RULE)
        return OFF if mark in (False, None) else None
    title, desc = schema.get("title"), schema.get("description")
    for text in (title, desc):
        if isinstance(text, str) and text:
            text = text[:500]
            if _SCHEMA_PERSON.search(text):
                return Hint(PERSON, STRONG)
            if _SCHEMA_ADDRESS.search(text):
                return Hint(ADDRESS, STRONG)
    return key_hint(title, context) if isinstance(title, str) and len(title) < 64 else None


class SchemaView:
    """Walks an outputSchema beside a value: properties, items, local `$ref`s and the
    branches of allOf/anyOf/oneOf, with bounded effort (schemas come from upstreams)."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def resolve(self, schema: object) -> Mapping[str, Any] | None:
        for _ in range(_MAX_REFS):
            if not isinstance(schema, Mapping):
                return None
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#"):
                return schema
            schema = self._pointer(ref)
        return None

    def _pointer(self, ref: str) -> object:
        node: object = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node.get(part) if isinstance(node, Mapping) else None
        return node

    def prop(self, schema: Mapping[str, Any] | None, key: str, depth: int = 0) -> Any:
        s = self.resolve(schema)
        if s is None or depth > 8:
            return None
        props = s.get("properties")
        if isinstance(props, Mapping) and isinstance(props.get(key), Mapping):
            return self.resolve(props[key])
        for branch in self._branches(s):
            found = self.prop(branch, key, depth + 1)
            if found is not None:
                return found
        extra = s.get("additionalProperties")
        return self.resolve(extra) if isinstance(extra, Mapping) else None

    def items(self, schema: Mapping[str, Any] | None, depth: int = 0) -> Any:
        s = self.resolve(schema)
        if s is None or depth > 8:
            return None
        if isinstance(s.get("items"), Mapping):
            return self.resolve(s["items"])
        for branch in self._branches(s):
            found = self.items(branch, depth + 1)
            if found is not None:
                return found
        return None

    @staticmethod
    def _branches(s: Mapping[str, Any]) -> list[Any]:
        out: list[Any] = []
        for k in ("allOf", "anyOf", "oneOf"):
            if isinstance(s.get(k), list):
                out.extend(s[k][:32])
        return out


# -- field rules ------------------------------------------------------------------------------


def _segment(part: str) -> str:
    part = part.strip()
    if part == "**" or not any(c in part for c in "*?["):
        return part if part == "**" else normalize_key(part)
    return part.casefold()


@functools.lru_cache(maxsize=16384)
def path_matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """Whether normalized `path` matches `pattern` (`*` one key, `**` any number of keys)."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(path_matches(rest, path[i:]) for i in range(len(path) + 1))
    if not path or not (path[0] == head or fnmatch.fnmatchcase(path[0], head)):
        return False
    return path_matches(rest, path[1:])


class FieldRules:
    """The deployment's structured rules: whether key names count (`keys`), which entities
    they may mark (`entities`, None: all of KEY_ENTITIES), and explicit field rules."""

    def __init__(
        self,
        rules: Iterable[FieldRule] = (),
        *,
        keys: bool = True,
        entities: Iterable[str] | None = None,
    ) -> None:
        self.keys = keys
        self.entities = frozenset(KEY_ENTITIES if entities is None else entities)
        self.rules = [
            (r.tools, tuple(_segment(p) for p in r.path.split(".")), Hint(r.entity, RULE))
            for r in rules
        ]

    def for_origin(self, origin: str) -> list[tuple[tuple[str, ...], Hint]]:
        """The rules that apply to results of `origin` (`server.tool`; '' matches only `*`)."""
        return [
            (path, hint)
            for tools, path, hint in self.rules
            if tools == "*" or (origin and fnmatch.fnmatchcase(origin, tools))
        ]

    def key_hint(self, key: str, context: str) -> Hint | None:
        if not self.keys:
            return None
        hint = key_hint(key, context)
        return hint if hint is not None and hint.entity in self.entities else None
