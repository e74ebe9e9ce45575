"""Argument checks made in the controller before any upstream sees a call: nesting depth, and
the tool's own input schema (JSON Schema, with the `jsonschema` library)."""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import SchemaError
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable


def _no_retrieve(uri: str) -> Any:
    # Never fetch a schema from the network (the controller must not make requests an
    # upstream's schema asks for): only references within the schema resolve.
    raise NoSuchResource(uri)


_OFFLINE = Registry(retrieve=_no_retrieve)  # type: ignore[call-arg]  # retrieve is a field


def depth(value: object, limit: int) -> int:
    """How deeply `value` nests lists and objects, counting no further than `limit` + 1.

    Iterative: a hostile value cannot exhaust the stack."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None  # an upstream's broken schema checks nothing; the upstream still does
    return cls(schema, registry=_OFFLINE)


def schema_problem(schema: dict[str, Any], args: dict[str, Any]) -> str | None:
    """The first way `args` breaks the tool's input schema, or None. No remote `$ref` is
    fetched: the validator resolves references only within the schema."""
    validator = _validator(json.dumps(schema, sort_keys=True))
    if validator is None:
        return None
    try:
        error = next(iter(validator.iter_errors(args)), None)
    except (Unresolvable, RecursionError):
        return None  # a reference we will not fetch, or a self-referencing schema: unchecked
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "arguments"
    return f"{where}: {error.message}"[:300]
