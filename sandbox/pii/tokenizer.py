"""Replacing PII with session tokens (`[EMAIL_1]`) and back, in strings and JSON-like values."""

from __future__ import annotations

import re
from typing import Any

from sandbox.exceptions import InvalidInputError
from sandbox.pii.detect import Detector, detect
from sandbox.pii.vault import MasterKeys, Vault

TOKEN_PATTERN = re.compile(r"\[[A-Z][A-Z_]{1,30}_\d{1,9}\]")
MAX_DEPTH = 256


class Tokenizer:
    """One per session. Tokens are deterministic within it (same value, same token) and
    resolve only through its own vault; only the controller holds a Tokenizer."""

    def __init__(self, vault: Vault, detector: Detector | None = None) -> None:
        self.vault = vault
        self._detect = detector.detect if detector is not None else detect
        self.issued = 0
        """How many values were replaced by tokens (for metrics)."""

    @classmethod
    def for_session(
        cls, keys: MasterKeys, session: str, detector: Detector | None = None
    ) -> Tokenizer:
        return cls(Vault(keys, session), detector)

    def tokenize(self, obj: Any) -> Any:
        """A copy of `obj` with every detected value replaced by its token.

        Raises:
            InvalidInputError: the value nests deeper than 256 levels.
        """
        return self._walk(obj, self._tokenize_str, 0)

    def detokenize(self, obj: Any) -> Any:
        """A copy of `obj` with this session's tokens replaced by their values; other
        token-shaped strings (unknown, or from another session) stay as they are."""
        return self._walk(obj, self._detokenize_str, 0)

    def _tokenize_str(self, text: str) -> str:
        findings = self._detect(text)
        if not findings:
            return text
        parts: list[str] = []
        pos = 0
        for f in findings:
            parts.append(text[pos : f.start])
            parts.append(self.vault.token_for(f.entity, text[f.start : f.end]))
            pos = f.end
        parts.append(text[pos:])
        self.issued += len(findings)
        return "".join(parts)

    def _detokenize_str(self, text: str) -> str:
        if "[" not in text:
            return text
        return TOKEN_PATTERN.sub(lambda m: self.vault.value_for(m.group()) or m.group(), text)

    def _walk(self, obj: Any, fn: Any, depth: int) -> Any:
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
