"""What counts as PII: per entity, an anchor, a precise pattern and a validator.

The *anchor* is a short pattern (in the syntax both Hyperscan and Python's `re` accept) that
every occurrence of the entity contains; the engine finds anchors across the whole text in
one pass. The precise *pattern* (Python `re`) then runs only in a window around each anchor:
from `lookbehind` characters before the anchor's end to `max_len` after it. The *validator*
decides, and returns the normalized value (the key for deterministic tokens) or None.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sandbox.pii.phones import DEFAULT_REGIONS, PhoneContext, PhoneRules


@dataclass(frozen=True)
class Recognizer:
    entity: str
    anchor: str
    pattern: str
    validate: Callable[[str], str | None]
    lookbehind: int = 0
    max_len: int = 256
    priority: int = 0
    """Higher wins when two findings overlap (then the longer one)."""
    caseless: bool = False
    anchor_len: int | None = None
    """Set when the entity starts exactly where its fixed-length anchor starts: the precise
    pattern is then tried once at that position instead of scanning a window."""
    shrink: bool = False
    """When the validator refuses a match, retry it cut back at its last space or dash (a card
    number followed by another number group)."""
    back: str | None = None
    """With `anchor_len`: a pattern for the entity's text before its anchor (an email's local
    part, at most 64 characters); the entity starts where its leftmost match ending at the
    anchor starts, and the precise pattern is tried once there (no window is scanned)."""
    context: Callable[[str], Callable[[int], bool]] | None = None
    """For validators that may return a weak `Verdict`: given the text, a test of whether the
    finding starting at an offset stands in a context that confirms it."""


# -- validators -----------------------------------------------------------------------------


def _email(s: str) -> str | None:
    local, _, domain = s.rpartition("@")
    if not local or len(s) > 254 or ".." in s or local.startswith(".") or domain.startswith("-"):
        return None
    tld = domain.rsplit(".", 1)[-1]
    return s.lower() if tld.isalpha() and len(tld) >= 2 else None


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_CARD_PREFIX = re.compile(
    r"4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9])|35(?:2[89]|[3-8])|62"
    r"|5[6-8]|(?:1800|2131)(?=\d{11}$)"  # Maestro (16+ digits), JCB's old 15-digit ranges
)
# Maestro's own ranges also issue 12-digit numbers.
_MAESTRO = re.compile(r"50(?:18|20|38)|5893|6304|6759|676[1-3]")


def _card(s: str) -> str | None:
    digits = s.replace(" ", "").replace("-", "")
    if not 12 <= len(digits) <= 19 or not digits.isdigit():
        return None
    prefix = _MAESTRO.match(digits) or (len(digits) >= 13 and _CARD_PREFIX.match(digits))
    if not prefix or not luhn_ok(digits):
        return None
    # Separators, when present, must group the digits the way cards print (4-4-4-4, 4-6-5, ...).
    if len(digits) != len(s):
        groups = [len(g) for g in re.split(r"[ -]", s)]
        if groups not in (
            [4, 4, 4, 4],
            [4, 6, 5],
            [4, 6, 4],
            [4, 4, 4, 4, 3],
            [4, 4, 4, 1],
            [4, 4, 5],
            [4, 4, 4],
        ):
            return None
    return digits


IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "RU": 33, "BI": 27,
    "DJ": 27, "LY": 25, "SD": 18, "NI": 28, "MN": 20, "FK": 18, "SO": 23, "OM": 23, "YE": 30,
    "HN": 28,
}  # fmt: skip


def _iban(s: str) -> str | None:
    compact = s.replace(" ", "").upper()
    # The registry's length for the country, or any other with a valid checksum: a number
    # written or generated a character short still names an account.
    if compact[:2] not in IBAN_LENGTHS or not 15 <= len(compact) <= 34:
        return None
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return compact if int(number) % 97 == 1 else None


def _ssn(s: str) -> str | None:
    digits = s.replace("-", "").replace(" ", "")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    if len(set(digits)) == 1 or digits in ("123456789", "078051120"):
        return None
    return digits


# Never a person's: "this host", broadcast and netmasks, multicast and reserved space.
_NOT_PII_V4 = [ipaddress.IPv4Network(n) for n in ("0.0.0.0/8", "224.0.0.0/3")]
_NOT_PII_V6 = [ipaddress.IPv6Network(n) for n in ("::/128", "ff00::/8")]
# Loopback, private and link-local: the user's own machines; PII only when configured so.
PRIVATE_V4 = [
    ipaddress.IPv4Network(n)
    for n in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
              "100.64.0.0/10")
]  # fmt: skip
PRIVATE_V6 = [ipaddress.IPv6Network(n) for n in ("::1/128", "fc00::/7", "fe80::/10")]


def _v4_ok(addr: ipaddress.IPv4Address, private: bool) -> bool:
    if any(addr in n for n in _NOT_PII_V4):
        return False
    return private or not any(addr in n for n in PRIVATE_V4)


def _ipv4_validator(private: bool) -> Callable[[str], str | None]:
    def validate(s: str) -> str | None:
        parts = s.split(".")
        if any(len(p) > 1 and p[0] == "0" for p in parts):
            return None  # leading zeros: a version or an id, not how addresses are written
        try:
            addr = ipaddress.IPv4Address(s)
        except ValueError:
            return None
        return str(addr) if _v4_ok(addr, private) else None

    return validate


def _ipv6_validator(private: bool) -> Callable[[str], str | None]:
    def validate(s: str) -> str | None:
        if s.count(":") < 2 or ":::" in s:
            return None
        groups = [g for g in s.split(":") if g]
        if "::" in s and not (private and s == "::1"):
            # `a[1::2]`, `0::/` (cgroup v2): compressed forms need two groups, one of 3+ digits.
            if len(groups) < 2 or max(map(len, groups)) < 3 or not any(c.isdigit() for c in s):
                return None
        elif all(len(g) == 2 for g in groups):
            return None  # 02:42:ac:11:00:02:00:01 is a hardware id or a hex dump
        try:
            addr = ipaddress.IPv6Address(s)
        except ValueError:
            return None
        if any(addr in n for n in _NOT_PII_V6):
            return None
        if addr.ipv4_mapped is not None:
            return addr.compressed if _v4_ok(addr.ipv4_mapped, private) else None
        if not private and any(addr in n for n in PRIVATE_V6):
            return None
        return addr.compressed

    return validate


def shannon_bits(s: str) -> float:
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _secret(s: str) -> str | None:
    return s


def _keyed_secret(s: str) -> str | None:
    """`api_key = "..."`-style assignments: the value must look random."""
    value = re.split(r"[:=]", s, maxsplit=1)[-1].strip().strip("\"'")
    if len(value) < 16 or shannon_bits(value) < 3.3 or value.isalpha() or value.isdigit():
        return None
    return value


def _bearer(s: str) -> str | None:
    value = s.split(None, 1)[-1]
    return value if len(value) >= 20 and shannon_bits(value) >= 3.0 else None


# -- the default set ------------------------------------------------------------------------
# Precise patterns start with a plain character class where they can (what may not stand
# before the entity is then checked behind its first character): Python's regex engine skips
# to the next possible start at C speed instead of testing lookbehinds at every position.

_EMAIL = r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}"
# Precise patterns run only in Python, so they may use lookarounds. A phone number is not
# glued to letters, digits or dots (versions, ids, decimals) and does not start inside a run
# of number groups (`00 00 00 …`) or after a clock time's colon; items are digit groups or
# (area codes), separated by one of ` .-/` or by nothing next to a parenthesis; `x213` /
# `ext. 12` may follow. Candidates with fewer than 7 digits are not even tried. The first
# character is consumed by a plain class (the regex engine then skips to the next digit, `+`
# or `(` at C speed, about 3x faster than leading lookbehinds), and what may not stand
# before it is checked behind it.
_PHONE_ITEM = r"(?:\(\d{1,5}\)|\d{1,15})"
_PHONE = (
    r"[\d+(](?<![\w.+/#$€£¥-].)(?<!\d[ .\-/:]\d)"
    r"(?:(?<=\d)(?=(?:[^\d\n]{0,3}\d){6})\d{0,14}"
    r"|(?<=\+)(?=(?:[^\d\n]{0,3}\d){7})(?:\(\d{1,3}\))?[ .\-]?"
    + _PHONE_ITEM
    + r"|(?<=\()(?=(?:[^\d\n]{0,3}\d){7})(?:\+\d{1,3}\)[ .\-]?"
    + _PHONE_ITEM
    + r"|\d{1,5}\)))"
    + r"(?:(?: ?[.\-/] ?| |(?<=\))|(?=\())"
    + _PHONE_ITEM
    + r"){0,7}(?: ?(?:x|ext\.?|extension|\#) ?\d{1,6})?(?!\w|[.\-/]\d)"
)


def default_recognizers(
    region: str = "US", *, regions: Iterable[str] | None = None, private_ips: bool = False
) -> list[Recognizer]:
    """The built-in recognizers. `region` is tried first for phone numbers without a +country
    code, then `regions`; `private_ips` makes loopback, private and link-local addresses PII."""
    secret_tokens = (
        ("(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b", 5, 20),
        ("gh[pousr]_", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b", 4, 260),
        ("github_pat_", r"\bgithub_pat_[A-Za-z0-9_]{60,255}\b", 11, 270),
        ("xox[abposr]-", r"\bxox[abposr]-[A-Za-z0-9-]{10,250}\b", 5, 256),
        ("[sr]k_(?:live|test)_", r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,247}\b", 8, 256),
        ("sk-", r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{32,200}\b", 3, 210),
        ("AIza", r"\bAIza[0-9A-Za-z_-]{35}\b", 4, 40),
        (
            "eyJ[A-Za-z0-9_-]",
            r"\beyJ[A-Za-z0-9_-]{8,2000}\.eyJ[A-Za-z0-9_-]{8,4000}\.[A-Za-z0-9_-]{8,2000}",
            4,
            8010,
        ),
    )
    return [
        Recognizer("SECRET", "-----BEGIN ", r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----[A-Za-z0-9+/=\s:,.\\-]{16,8192}?-----END [A-Z ]{0,40}PRIVATE KEY-----",
                   _secret, lookbehind=11, max_len=9000, priority=9, anchor_len=11),
        *[Recognizer("SECRET", a, p, _secret, lookbehind=lb, max_len=ml, priority=8, anchor_len=lb) for a, p, lb, ml in secret_tokens],
        Recognizer("SECRET", "[Bb]earer ", r"\b[Bb]earer [A-Za-z0-9._~+/-]{20,500}=*", _bearer, lookbehind=7, max_len=520, priority=7, anchor_len=7),
        Recognizer("SECRET", "(?:api[_-]?key|apikey|secret|token|password|passwd)",
                   r"[aAsScCpP](?:(?<=[aA])(?i:pi[_-]?key|pikey|ccess[_-]?token|uth[_-]?token|ws_secret_access_key)|(?<=[sS])(?i:ecret[_-]?key)|(?<=[cC])(?i:lient[_-]?secret)|(?<=[pP])(?i:assword|asswd))[\"']?\s{0,3}[:=]\s{0,3}[\"']?[A-Za-z0-9_./+=-]{16,200}",
                   _keyed_secret, lookbehind=30, max_len=260, priority=6, caseless=True),
        Recognizer("EMAIL", "@[A-Za-z0-9]", _EMAIL, _email, lookbehind=66, max_len=256, priority=5,
                   anchor_len=2, back="[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}"),
        Recognizer("IBAN", "\\b[A-Z]{2}\\d{2}", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", _iban, lookbehind=5, max_len=42, priority=5, shrink=True),
        Recognizer("CREDIT_CARD", "\\b\\d{4}[ -]?(?:\\d[ -]?){7}\\d", r"\d(?<!\w\d)(?<![A-Z]{2}\d{2} \d)\d{3}(?:[ -]?\d){8,15}\b", _card, lookbehind=24, max_len=12, priority=4, shrink=True),
        Recognizer("US_SSN", "\\d{3}[ -]\\d{2}[ -]\\d{4}", r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b", _ssn, lookbehind=11, max_len=11, priority=3, anchor_len=11),
        Recognizer("IP_ADDRESS", "\\b\\d{1,3}\\.\\d{1,3}\\.\\d", r"\d(?<![\w.]\d)(?<![Vv]ersion \d)(?<![Bb]uild \d)(?<![Rr]elease \d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w.]?\d|[~+]|-\d+(?![.\d]))", _ipv4_validator(private_ips), lookbehind=12, max_len=15, priority=2),
        Recognizer("IP_ADDRESS", "::|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:", r"(?<![\w:.])(?:(?:[0-9A-Fa-f]{0,4}:){2,6}(?:\d{1,3}\.){3}\d{1,3}|(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})(?![\w:]|\.\d)", _ipv6_validator(private_ips), lookbehind=40, max_len=46, priority=2),
        Recognizer("PHONE", "\\+\\d|\\(\\d|\\b\\d{2,6}[ .\\-/]{1,2}\\(?\\d{2}|\\b\\d{7}", _PHONE, PhoneRules([region, *(regions or DEFAULT_REGIONS)]).validate,
                   lookbehind=36, max_len=40, priority=1, context=PhoneContext),
    ]  # fmt: skip


ENTITIES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET")
