"""Redacting PII in text that is not data: upstream tool descriptions and schemas.

A server's description may name a person or an address ("escalations go to
maria.gonzalez@example.com"). That text reaches every model that lists the tools, in every
session, so it is no session's to tokenize and nobody's to restore: values are replaced by
their entity name (`[EMAIL]`), which is not a token and resolves to nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.pii.detect import Finding, detect

_TEXT_KEYS = frozenset({"description", "title", "default", "examples", "example"})


def redact(text: str, find: Callable[[str], list[Finding]] = detect) -> str:
    """`text` with every value `find` finds replaced by `[ENTITY]`."""
    found = find(text)
    if not found:
        return text
    parts, pos = [], 0
    for f in found:
        parts += [text[pos : f.start], f"[{f.entity}]"]
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


def redact_schema(schema: Any, depth: int = 0) -> Any:
    """A JSON schema with its human text (descriptions, titles, defaults, examples) redacted."""
    if depth > 64:
        return schema
    if isinstance(schema, dict):
        return {
            k: _redact_any(v) if k in _TEXT_KEYS else redact_schema(v, depth + 1)
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [redact_schema(v, depth + 1) for v in schema]
    return schema


def _redact_any(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact(value)
    if depth > 64:
        return value
    if isinstance(value, list):
        return [_redact_any(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _redact_any(v, depth + 1) for k, v in value.items()}
    return value
