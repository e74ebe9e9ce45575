"""PII detection and per-session tokenization.

    from sandbox.pii import detect, Tokenizer
    detect(text)              -> [Finding(start, end, entity, value)]
    Tokenizer(...).tokenize(obj, known=..., origin=..., schema=...) / .detokenize(obj)
                              strings and nested JSON-like values (JSON text too)

Entities: EMAIL, PHONE, CREDIT_CARD, IBAN, US_SSN, IP_ADDRESS, SECRET by pattern; PERSON and
ADDRESS (and digit-only PHONE, US_SSN, CREDIT_CARD) by key name, outputSchema or field rule.
"""

from sandbox.pii.detect import HYPERSCAN, Detector, Finding, detect
from sandbox.pii.fields import FieldRule, FieldRules
from sandbox.pii.recognizers import ENTITIES, Recognizer, default_recognizers
from sandbox.pii.tokenizer import TOKEN_PATTERN, Tokenizer
from sandbox.pii.vault import MasterKeys, Vault, VaultError

__all__ = [
    "ENTITIES",
    "HYPERSCAN",
    "TOKEN_PATTERN",
    "Detector",
    "FieldRule",
    "FieldRules",
    "Finding",
    "MasterKeys",
    "Recognizer",
    "Tokenizer",
    "Vault",
    "VaultError",
    "default_recognizers",
    "detect",
]
