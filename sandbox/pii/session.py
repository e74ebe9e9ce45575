"""A session's tokenizer: the deployment's keys, detector and field rules, narrowed to the
entities the session's profile tokenizes."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from sandbox.pii.detect import Detector, Finding
from sandbox.pii.fields import FieldRules
from sandbox.pii.tokenizer import Tokenizer
from sandbox.pii.vault import MasterKeys


class _Narrowed(Detector):
    """A detector's findings of some entities only (no new compile: the deployment's scan)."""

    def __init__(self, inner: Detector, entities: frozenset[str]) -> None:
        self._inner, self._entities = inner, entities

    def detect(self, text: str) -> list[Finding]:
        return [f for f in self._inner.detect(text) if f.entity in self._entities]


def session_tokenizer(
    pii: tuple[MasterKeys, Detector, FieldRules] | None,
    session_id: str,
    entities: Iterable[str] | None = None,
) -> Tokenizer | None:
    """The tokenizer of one session; None when PII tokenization is off."""
    if pii is None:
        return None
    keys, detector, fields = pii
    if entities is not None:
        wanted = frozenset(entities)
        detector = _Narrowed(detector, wanted)
        fields = copy.copy(fields)
        fields.entities = fields.entities & wanted
    return Tokenizer.for_session(keys, session_id, detector, fields)
