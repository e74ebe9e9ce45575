"""Tokens in the code a model writes: which of them the box gets as real values.

A model sees tokens where the box has real values: in a file preview, in what the code
printed. Code it writes from those (`df[df.email == "[EMAIL_1]"]`, `grep '[EMAIL_1]' x.csv`)
must find the rows it meant. So a token in code or a command is resolved when its value came
from the box itself (program output, a workspace file): the box held that value already and
learns nothing new. A token whose value came only from a tool's result stays a token in the
code: the box never holds it, and it reaches a tool only as an argument, where the restore
policy decides (sandbox/pii/restore.py).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sandbox.pii.tokenizer import TOKEN_PATTERN
from sandbox.pii.vault import OUTPUT, UPLOAD

if TYPE_CHECKING:
    from sandbox.pii.tokenizer import Tokenizer

_SEEN_IN_BOX = frozenset({OUTPUT, UPLOAD})


def resolve_in_code(tokenizer: Tokenizer | None, code: str) -> str:
    """`code` with the session's tokens of values the box already held replaced by them."""
    if tokenizer is None or "[" not in code:
        return code
    vault = tokenizer.vault

    def value(m: re.Match[str]) -> str:
        token = m.group()
        info = vault.info(token)
        if info is None or not _SEEN_IN_BOX.intersection(info.origins):
            return token
        return vault.value_for(token) or token

    return TOKEN_PATTERN.sub(value, code)
