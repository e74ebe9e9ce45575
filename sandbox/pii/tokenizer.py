"""Replacing PII with session tokens (`[EMAIL_1]`) and back, in strings and JSON-like values.

Tokenizing walks the value as JSON: a dict's keys are scanned like any text, and its values
first by what their key, the tool's outputSchema or a field rule says they are
(`sandbox.pii.structured`), then by pattern. A string that is itself a JSON object or array
(tools often return JSON as text) is parsed, tokenized the same way and written back, so a
token never breaks its parsing; it stays byte for byte as it was when nothing in it changed.
Integers (and floats with an integral value) of seven digits or more are scanned as their
digits, and a number a key marks as a phone, SSN or card number becomes its token's string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.exceptions import InvalidInputError
from sandbox.pii.batch import ALONE, Batch, substitute
from sandbox.pii.detect import Detector, Finding, detect
from sandbox.pii.fields import FieldRules, SchemaView, path_matches, schema_hint
from sandbox.pii.structured import NUMBER_ENTITIES, RULE, Hint, dict_context, fits, normalize_key
from sandbox.pii.vault import MasterKeys, Vault

TOKEN_PATTERN = re.compile(r"\[[A-Z][A-Z_]{1,30}_\d{1,9}\]")
MAX_DEPTH = 256
_MIN_ANYWHERE = 4
"""A known value this long or longer is replaced wherever it occurs, even glued to other
text; a shorter one only where it stands alone (not inside a longer word or number)."""


class Known:
    """Raw values the caller knows the tokens of (those just restored into a call's
    arguments), found in any case, before any detection."""

    def __init__(self, known: Mapping[str, str]) -> None:
        items = sorted(((v, t) for v, t in known.items() if v.strip()), key=lambda i: -len(i[0]))
        self._exact = dict(items)
        self._folded = {v.casefold(): t for v, t in reversed(items)}
        alternatives = [
            re.escape(v) if len(v) >= _MIN_ANYWHERE else rf"(?<![^\W_]){re.escape(v)}(?![^\W_])"
            for v, _ in items
        ]
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE) if items else None

    def exact(self, text: str) -> str | None:
        return self._exact.get(text)

    def replace(self, text: str) -> tuple[str, int]:
        """`text` with every known value replaced by its token, and how many were."""
        if self._pattern is None:
            return text, 0
        return self._pattern.subn(self._token, text)

    def _token(self, m: re.Match[str]) -> str:
        found = m.group()
        token = self._exact.get(found) or self._folded.get(found.casefold())
        if token is None:  # a case pair casefold does not map back (rare): ask each value
            token = next(
                t for v, t in self._exact.items() if re.fullmatch(re.escape(v), found, re.I)
            )
        return token


class _Call:
    """What one tokenize() call knows: the values and tokens it was given, the origin of the
    result, the field rules and schema that apply to it, and how much it replaced."""

    def __init__(
        self,
        fields: FieldRules,
        known: Mapping[str, str] | None,
        origin: str,
        schema: Mapping[str, Any] | None,
    ) -> None:
        self.fields = fields
        self.known = Known(known) if known else None
        self.origin = origin
        self.rules = fields.for_origin(origin)
        self.schema = SchemaView(schema) if schema else None
        self.replaced = 0
        self.batch = Batch()
        """Strings waiting for the pattern scan, all at once when the walk is done."""
        self.keys: dict[str, tuple[str, int]] = {}
        """Keys scanned so far (a result repeats a few keys in every record)."""
        self._rule_hints: dict[tuple[str, ...], Hint | None] = {}
        self._schema_hints: dict[tuple[int, str], Hint | None] = {}

    def rule_hint(self, path: tuple[str, ...]) -> Hint | None:
        """The last field rule matching `path` (later rules override earlier ones)."""
        if path not in self._rule_hints:
            hits = [h for p, h in self.rules if path_matches(p, path)]
            self._rule_hints[path] = hits[-1] if hits else None
        return self._rule_hints[path]

    def schema_hint(self, schema: Mapping[str, Any] | None, context: str) -> Hint | None:
        if schema is None:
            return None
        key = (id(schema), context)
        if key not in self._schema_hints:
            hint = schema_hint(schema, context)
            if hint is not None and hint.level != RULE:
                # Titles and descriptions count like key names: same switch, same entities.
                ok = self.fields.keys and hint.entity in self.fields.entities
                hint = hint if ok else None
            self._schema_hints[key] = hint
        return self._schema_hints[key]


class Tokenizer:
    """One per session. Tokens are deterministic within it (same value, same token) and
    resolve only through its own vault; only the controller holds a Tokenizer."""

    def __init__(
        self, vault: Vault, detector: Detector | None = None, fields: FieldRules | None = None
    ) -> None:
        self.vault = vault
        self._detect = detector.detect if detector is not None else detect
        self.fields = fields if fields is not None else FieldRules()
        self.issued = 0
        """How many values were replaced by tokens (for metrics)."""

    @classmethod
    def for_session(
        cls,
        keys: MasterKeys,
        session: str,
        detector: Detector | None = None,
        fields: FieldRules | None = None,
    ) -> Tokenizer:
        return cls(Vault(keys, session), detector, fields)

    def tokenize(
        self,
        obj: Any,
        *,
        known: Mapping[str, str] | None = None,
        origin: str = "",
        schema: Mapping[str, Any] | None = None,
    ) -> Any:
        """A copy of `obj` with every detected value replaced by its token.

        `known` maps raw values to their tokens: those are replaced first, wherever they occur
        (a tool echoing a restored argument hands back only its token). `origin` names the
        result's source (`server.tool`): the vault records it, and field rules match it.
        `schema` is the tool's outputSchema, for the titles and descriptions of its fields.

        Raises:
            InvalidInputError: the value nests deeper than 256 levels.
        """
        call = _Call(self.fields, known, origin, schema)
        if schema is not None and _wraps_result(schema, obj):
            schema = schema["properties"]["result"]
        root = call.schema.resolve(schema) if call.schema is not None else None
        return self._settle(self._value(obj, call, 0, (), None, root, ""), call)

    def findings(self, text: str) -> list[Finding]:
        """What this session's detector finds in `text` (to cut text without splitting a value)."""
        return self._detect(text)

    def detokenize(self, obj: Any) -> Any:
        """A copy of `obj` with this session's tokens replaced by their values; other
        token-shaped strings (unknown, or from another session) stay as they are."""
        return self._walk(obj, self._detokenize_str, 0)

    # -- tokenizing ---------------------------------------------------------------------------

    def _value(
        self,
        obj: Any,
        call: _Call,
        depth: int,
        path: tuple[str, ...],
        hint: Hint | None,
        schema: Any,
        parent: str,
    ) -> Any:
        """`obj` tokenized; `hint` is what its field says it is, `schema` its subschema,
        `path` its keys from the document's root, `parent` the key that holds it."""
        if isinstance(obj, str):
            return self._string(obj, call, depth, hint, schema, parent)
        if isinstance(obj, bool) or obj is None:
            return obj
        if isinstance(obj, int | float):
            return self._number(obj, call, hint)
        if depth > MAX_DEPTH:
            raise InvalidInputError(f"value nests deeper than {MAX_DEPTH} levels")
        if isinstance(obj, dict):
            return self._dict(obj, call, depth, path, hint, schema, parent)
        if isinstance(obj, list | tuple):
            items = call.schema.items(schema) if call.schema is not None else None
            # Scalars in a list share its field's hint ("authors": [...]); dicts only a rule's.
            out: list[Any] = []
            for v in obj:
                out.append(self._value(v, call, depth + 1, path, hint, items, parent))
                call.batch.place(out, len(out) - 1)
            return out
        return obj

    def _dict(
        self,
        obj: dict[Any, Any],
        call: _Call,
        depth: int,
        path: tuple[str, ...],
        hint: Hint | None,
        schema: Any,
        parent: str,
    ) -> dict[Any, Any]:
        inherited = hint if hint is not None and hint.level == RULE else None
        context = dict_context(parent, tuple(obj))
        out = {}
        for k, v in obj.items():
            key = k if isinstance(k, str) else str(k)
            sub = call.schema.prop(schema, key) if call.schema is not None else None
            at = (*path, normalize_key(key)) if call.rules else path
            h = (call.rule_hint(at) if call.rules else None) or inherited
            if h is None:
                h = call.schema_hint(sub, context) or call.fields.key_hint(key, context)
            tk = self._key(k, call)
            out[tk] = self._value(v, call, depth + 1, at, h, sub, key)
            call.batch.place(out, tk)
        return out

    def _key(self, key: Any, call: _Call) -> Any:
        if not isinstance(key, str):
            return key
        if call.known is not None:
            key, n = call.known.replace(key)
            self._count(n, call)
        done = call.keys.get(key)
        if done is None:
            done = call.keys[key] = substitute(key, self._detect(key), self._minter(call))
        self._count(done[1], call)
        return done[0]

    def _string(
        self, text: str, call: _Call, depth: int, hint: Hint | None, schema: Any, parent: str
    ) -> str:
        if len(text) >= 2 and text.lstrip()[:1] in ("{", "[") and text.rstrip()[-1:] in "}]":
            parsed = self._json_text(text, call, depth, schema, parent)
            if parsed is not None:
                return parsed
        if call.known is not None:
            text, n = call.known.replace(text)
            if n:
                call.replaced += n
                self.issued += n
                hint = None  # a value holding a token is never wrapped into another one
        if hint is not None and hint.entity is not None and fits(hint, text):
            value = text.strip()
            lead = text[: len(text) - len(text.lstrip())]
            return lead + self._token(hint.entity, value, call) + text[len(lead) + len(value) :]
        return self._scan(text, call)

    def _json_text(
        self, text: str, call: _Call, depth: int, schema: Any, parent: str
    ) -> str | None:
        """A JSON object or array in text, tokenized as JSON; None when it is not one (or too
        deep to walk: the caller then scans it as text)."""
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if not isinstance(parsed, dict | list):
            return None
        before, outer = call.replaced, call.batch
        call.batch = Batch()  # written back below, so its strings are scanned first
        try:
            out = self._settle(self._value(parsed, call, depth + 1, (), None, schema, parent), call)
        except InvalidInputError:
            return None
        finally:
            call.batch = outer
        if call.replaced == before:
            return text
        return _dump_like(out, text)

    def _number(self, n: int | float, call: _Call, hint: Hint | None) -> Any:
        if isinstance(n, float) and (not n.is_integer() or abs(n) >= 2**53):
            return n
        text = str(int(n))
        if call.known is not None and (token := call.known.exact(text)) is not None:
            call.replaced += 1
            self.issued += 1
            return token
        if (
            hint is not None
            and hint.entity is not None
            and (hint.level == RULE or hint.entity in NUMBER_ENTITIES)
            and fits(hint, text)
        ):
            return self._token(hint.entity, text, call)
        if not 7 <= len(text.lstrip("-")) <= 32:
            return n  # too short or too long for a phone, SSN or card number
        call.batch.add(text)  # its token string replaces it if the scan finds something
        return n

    def _scan(self, text: str, call: _Call) -> str:
        """`text` with its pattern findings tokenized if it is long; a shorter one is returned
        as it is, waiting in the batch for `_settle` to replace it in place."""
        if len(text) < ALONE:
            call.batch.add(text)
            return text
        out, n = substitute(text, self._detect(text), self._minter(call))
        self._count(n, call)
        return out

    def _settle(self, obj: Any, call: _Call) -> Any:
        """`obj` (built by the walk) with its waiting strings scanned, all together, and put
        in place; a scalar `obj` comes back as its own result."""
        batch = call.batch
        if not batch.texts:
            return obj
        batch.run(self._detect, self._minter(call))
        if batch.pending >= 0:  # obj itself is a string or number that waited
            out, n = batch.results[batch.pending]
            self._count(n, call)
            obj = out if n else obj
        self._count(batch.settle(), call)
        call.batch = Batch()
        return obj

    def _minter(self, call: _Call) -> Callable[[str, str], str]:
        return lambda entity, value: self.vault.token_for(entity, value, origin=call.origin)

    def _count(self, n: int, call: _Call) -> None:
        call.replaced += n
        self.issued += n

    def _token(self, entity: str, value: str, call: _Call) -> str:
        call.replaced += 1
        self.issued += 1
        return self.vault.token_for(entity, value, origin=call.origin)

    # -- detokenizing -------------------------------------------------------------------------

    def _detokenize_str(self, text: str) -> str:
        if "[" not in text:
            return text
        return TOKEN_PATTERN.sub(lambda m: self.vault.value_for(m.group()) or m.group(), text)

    def _walk(self, obj: Any, fn: Callable[[str], str], depth: int) -> Any:
        if isinstance(obj, str):
            return fn(obj)
        if depth > MAX_DEPTH:
            raise InvalidInputError(f"value nests deeper than {MAX_DEPTH} levels")
        if isinstance(obj, dict):
            return {
                self._walk(k, fn, depth + 1): self._walk(v, fn, depth + 1) for k, v in obj.items()
            }
        if isinstance(obj, list | tuple):
            return [self._walk(v, fn, depth + 1) for v in obj]
        return obj

    def destroy(self) -> None:
        self.vault.destroy()


def _wraps_result(schema: Mapping[str, Any], obj: Any) -> bool:
    """The SDKs wrap a non-object return as {"result": value} and the bridge unwraps it: the
    schema then describes the value one level down."""
    props = schema.get("properties")
    return (
        isinstance(props, Mapping)
        and set(props) == {"result"}
        and isinstance(props["result"], Mapping)
        and not (isinstance(obj, dict) and set(obj) == {"result"})
    )


def _dump_like(obj: Any, text: str) -> str:
    """`obj` as JSON written the way `text` was: its indent (or none), compact separators or
    not, and the whitespace around it (a printed line keeps its newline)."""
    body = text.strip()
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    indent: int | None = None
    if "\n" in body:
        second = body.split("\n", 2)[1]
        indent = len(second) - len(second.lstrip(" ")) or 2
    compact = indent is None and ": " not in body and ", " not in body
    seps = (",", ":") if compact else ((",", ": ") if indent is not None else None)
    return lead + json.dumps(obj, ensure_ascii=False, indent=indent, separators=seps) + trail
