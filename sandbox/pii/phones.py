"""Phone numbers as people write them: any region's national format, international ones,
extensions, and numbers that are possible by shape even where no carrier owns the range.

`phonenumbers` supplies the facts (country codes, national prefixes, possible lengths per
region); the shape rules here decide, because its `is_valid_number` refuses unassigned ranges
(`382-868-0725`) and its matcher is far too slow for every tool result. A candidate is
  - *strong* when its shape says phone on its own: `+CC …`, `00CC …`, a North American
    3-3-4 grouping, a national number behind its trunk prefix (`0114 496 0825`,
    `04 93 37 78 76`) or an area code in parentheses;
  - *weak* when only context can tell it from a quantity or an id (`609 141 777`, a bare
    `0493377876`): it counts when a phone word stands just before it on its line, or heads
    its column in a CSV or a table (`PhoneContext`).
Versions, dates, times, decimals and runs of one or two digits are never phone numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata

from sandbox.exceptions import InvalidInputError

DEFAULT_REGIONS = (
    "US", "CA", "GB", "IE", "AU", "NZ", "IN", "ZA", "DE", "AT", "CH", "FR", "BE", "NL", "LU",
    "ES", "PT", "IT", "PL", "CZ", "SK", "HU", "RO", "SE", "NO", "DK", "FI", "GR", "TR", "RU",
    "UA", "IL", "AE", "BR", "MX", "AR", "CL", "CO", "JP", "KR", "CN", "TW", "HK", "SG", "PH",
    "ID", "TH", "VN", "MY", "NG", "KE", "EG",
)  # fmt: skip
"""Regions whose national formats are recognized when none is configured: large economies on
every continent (the formats tool results carry), in no order but the first."""

_EXT = re.compile(r"\s?(?:x|ext\.?|extension|#)\s?(\d{1,6})$", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
# Whole candidates that are something else: dates (with or without a time), decimals and
# amounts, dotted quads (addresses, build numbers) and the SSN shape (a refused SSN).
_NOT_PHONE = re.compile(
    r"\d{4}[-./]\d{1,2}[-./]\d{1,2}(?:[ T]\d.*)?|\d{1,2}[-./]\d{1,2}[-./]\d{2}"
    r"|\d{1,2}[-./ ]\d{1,2}[-./ ](?:19|20)\d\d(?: \d.*)?|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+"
    r"|\d{1,3}(?:\.\d{1,4}){3}|\d{3}-\d{2}-\d{4}"
)
_ISO_DATE = re.compile(r"(?:19|20)\d\d-[01]\d-[0-3]\d")
_NANP = re.compile(
    r"(?:\+?1[ .-]?|001[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}([ .-]))\d{3}(?(1)\1|[ .-])\d{4}"
)
_AREA = re.compile(r"(?:\d{1,2}[ .-]?)?\(\d{2,5}\)")
_SEP = r"[ .\-/]{1,2}"
# A national number behind its trunk prefix: `0114 496 0825`, `(0161) 4960066`; a lone `0`
# (`0 32 406 81 24`) needs more groups, or `0 21611896` in a table would be one.
_TRUNK = re.compile(rf"\(?0\d{{1,4}}\)?(?:{_SEP}\d{{2,8}}){{1,5}}|0(?:{_SEP}\d{{2,8}}){{3,5}}")


class Verdict(str):
    """A validator's value with conditions: it counts only where context says so (`weak`),
    and covers only the first `length` characters of the candidate (None: all of it)."""

    weak: bool = False
    length: int | None = None

    @classmethod
    def of(cls, value: str, weak: bool, length: int | None) -> str:
        if not weak and length is None:
            return value
        out = cls(value)
        out.weak, out.length = weak, length
        return out


def _lengths(region: str) -> tuple[int, ...]:
    meta = PhoneMetadata.metadata_for_region(region)
    desc = meta.general_desc if meta is not None else None
    return tuple(desc.possible_length) if desc is not None else ()


class PhoneRules:
    """Phone numbers of `regions` (the first decides between regions sharing a format).

    Raises:
        InvalidInputError: a region phonenumbers does not know.
    """

    def __init__(self, regions: Iterable[str] = DEFAULT_REGIONS) -> None:
        self.regions = list(dict.fromkeys(r.upper() for r in regions))
        self._codes = {str(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
        self._cc_len: dict[str, tuple[int, int]] = {}
        for cc, regs in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
            lens = [n for r in regs for n in (_lengths(r) if r != "001" else (6, 12))]
            if lens:
                self._cc_len[str(cc)] = (min(lens), max(lens))
        # National forms by their length in digits, then by the prefix people dial first
        # (trunk prefix, or none): (country code, the region's pattern of national numbers)
        # in the order of `regions`.
        forms: dict[int, dict[str, list[tuple[str, re.Pattern[str]]]]] = {}
        self._first_cc = ""
        for r in self.regions:
            meta = PhoneMetadata.metadata_for_region(r)
            if meta is None or meta.general_desc is None:
                raise InvalidInputError(f"unknown phone region {r!r} (use ISO 3166 codes: US, DE…)")
            prefix, code = meta.national_prefix or "", str(meta.country_code)
            pattern = re.compile(meta.general_desc.national_number_pattern or r"\d+")
            self._first_cc = self._first_cc or code
            for n in _lengths(r):
                forms.setdefault(len(prefix) + n, {}).setdefault(prefix, []).append((code, pattern))
        self._forms = {n: list(by_prefix.items()) for n, by_prefix in forms.items()}

    def validate(self, s: str) -> str | None:
        """The number's E.164 form (`;ext=…` added) or None; a `Verdict` when it counts only in
        context, or only for a prefix of `s` (another number glued on after a space)."""
        found = self._classify(s)
        if found is not None:
            return Verdict.of(found[0], found[1], None)
        groups = _DIGITS.findall(s)
        if len(groups) < 3 or max(map(len, groups)) <= 2:
            return None  # cutting `01 02 03 04 05 06` would find a number in any such run
        cut = s
        for _ in range(2):
            space = cut.rfind(" ")
            if space <= 0:
                return None
            cut = cut[:space].rstrip(" -./")
            found = self._classify(cut)
            if found is not None and not found[1]:  # a cut-down number must stand on its own
                return Verdict.of(found[0], False, len(cut))
        return None

    def _classify(self, s: str) -> tuple[str, bool] | None:
        """(E.164 value, weak) for a whole candidate, or None."""
        ext = ""
        m = _EXT.search(s) if ("x" in s or "t" in s or "#" in s) else None
        if m is not None:
            ext, s = ";ext=" + m.group(1), s[: m.start()]
        if _NOT_PHONE.fullmatch(s) or ("-" in s and _ISO_DATE.search(s)):
            return None
        groups = _DIGITS.findall(s.replace("(0)", " ", 1) if "+" in s else s)
        digits = "".join(groups)
        if not 7 <= len(digits) <= 17 or len(set(digits)) < 3:
            return None
        if s.lstrip("(").startswith("+"):
            value = self._international(digits)
            return (value + ext, False) if value else None
        if len(groups) > 5 and max(map(len, groups)) <= 2:
            return None  # 01 02 03 04 05 06: a hex dump or a list, not a number
        if digits.startswith("00"):  # the international call prefix of most countries
            value = self._international(digits[2:])
            if value:
                return value + ext, len(groups) == 1
        if _NANP.fullmatch(s):
            return "+1" + digits[-10:] + ext, False
        if len(digits) > 12:
            return None
        value = self._national(digits)
        if value is None:
            return None
        strong = len(groups) > 1 and len(digits) >= 9
        # After a trunk prefix comes an area or mobile code, never another 0 (that is `00`,
        # the international prefix, or an id padded with zeros).
        trunk = digits[0] == "0" and digits[1] != "0" and bool(_TRUNK.fullmatch(s))
        strong = strong and (trunk or bool(_AREA.match(s)))
        return value + ext, not strong

    def _international(self, digits: str) -> str | None:
        for n in (1, 2, 3):
            cc = digits[:n]
            if cc in self._codes:
                lo, hi = self._cc_len[cc]
                nsn = digits[n:]
                # Lenient by one digit: numbers are written from memory and generators.
                return f"+{cc}{nsn}" if lo - 1 <= len(nsn) <= hi + 1 and nsn else None
        return None

    def _national(self, digits: str) -> str | None:
        """`+CC…` for the first region whose national numbers `digits` can be (by pattern,
        else by length); None if it can be none."""
        fits = [(p, regs) for p, regs in self._forms.get(len(digits), ()) if digits.startswith(p)]
        for prefix, regs in fits:
            for cc, pattern in regs:
                if pattern.fullmatch(digits, len(prefix)):
                    return f"+{cc}{digits[len(prefix) :]}"
        if fits:
            prefix, regs = fits[0]
            return f"+{regs[0][0]}{digits[len(prefix) :]}"
        # Trunk prefix 0 with a length no listed region has: still a national number.
        return f"+{self._first_cc}{digits[1:]}" if digits[0] == "0" else None


def _context_pattern(words: Iterable[str]) -> re.Pattern[str]:
    # A word counts at its start or as the capitalized part of a camelCase key (`homePhone`),
    # never inside another word (`syscall`) nor as the start of one (`Teller`).
    alts = "|".join(words)
    return re.compile(f"(?:(?<![A-Za-z])(?i:{alts})|(?<=[a-z])(?:{alts.title()}))(?![a-z])")


PHONE_WORDS = (
    "phones?", "telephone", "tel", "tél", "telefon(?:e|o|nummer)?", "teléfono", "téléphone",
    "telefoon", "fon", "mob", "mobile?", "mobil(?:telefon|nummer)?", "móvil", "movil",
    "cell(?:phone|ular|ulare)?", "celular", "handy", "portable", "gsm", "fax", "call", "ring",
    "whats ?app", "sms", "tlf", "puhelin", "numero", "número", "numéro", "телефон", "тел",
    "switchboard", "(?<!order )(?<!account )(?<!invoice )(?<!tracking )(?<!serial )(?<!card )number",
    "電話", "携帯", "전화", "手机", "电话",
)  # fmt: skip
"""Words that say a phone number follows (English and the languages of DEFAULT_REGIONS); they
decide only for *weak* candidates."""
_WORDS = _context_pattern(PHONE_WORDS)
_STEMS = ("phon", "tel", "tél", "fon", "mob", "móv", "mov", "cel", "hand", "port", "gsm", "fax",
          "call", "ring", "what", "sms", "tlf", "puh", "num", "núm", "тел", "電話", "携帯", "전화",
          "switch",
          "手机", "电话")  # fmt: skip
# One-letter labels of signatures and cards: `T: …`, `M. …`, `| P: …`.
_LABEL = re.compile(r"(?:^|(?<=[\s|,;\"'(]))[TMPFC]\s?[.:]\s*$")
_DELIMS = ("\t", "|", ";", ",")


class PhoneContext:
    """Whether a weak candidate at some offset of `text` stands in a phone context: a phone
    word shortly before it on its line with no other number between, or a column (CSV, TSV,
    Markdown table) whose header names a phone. One per scanned text; offsets ascending."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._block = (-1, 0)  # (scanned up to, start of the block there)
        self._headers: dict[tuple[int, str], frozenset[int]] = {}

    def __call__(self, start: int) -> bool:
        text = self._text
        seg = text[max(0, start - 48) : start]
        seg = seg[seg.rfind("\n") + 1 :]
        low = seg.lower()
        if any(w in low for w in _STEMS):  # most segments have none: skip the regex
            ends = [m.end() for m in _WORDS.finditer(seg)]
            # `phone2: …` and `"tel": "…"` count; `tel. 0114 496 0825, order 1234567` does not.
            if ends and not any(c.isdigit() for c in seg[ends[-1] :].lstrip("_0123456789")):
                return True
        if seg.rstrip()[-1:] in (":", ".") and _LABEL.search(seg):
            return True
        return self._column(start)

    def _column(self, start: int) -> bool:
        text = self._text
        ls = text.rfind("\n", max(0, start - 4096), start) + 1
        if ls == 0 and start > 4096:
            return False  # a line this long is no table
        le = text.find("\n", start, start + 4096)
        line = text[ls : le if le >= 0 else start + 4096]
        delim = next((d for d in _DELIMS if d in line), None)
        if delim is None:
            return False
        return _cells_before(text[ls:start], delim) in self._header(ls, delim)

    def _header(self, ls: int, delim: str) -> frozenset[int]:
        """Columns named like a phone in the first line with `delim` of the block (the text
        between blank lines) holding the line at `ls`."""
        text = self._text
        scanned, block = self._block
        if ls < scanned:
            scanned, block = 0, 0
        blank = text.rfind("\n\n", scanned, ls)
        if blank >= 0:
            block = blank + 2
        self._block = (ls, block)
        key = (block, delim)
        if key not in self._headers:
            pos, cols = block, frozenset[int]()
            while pos <= ls:
                end = text.find("\n", pos)
                end = len(text) if end < 0 else end
                if delim in text[pos:end]:
                    cells = _split(text[pos:end], delim)
                    cols = frozenset(i for i, c in enumerate(cells) if _WORDS.search(c))
                    break
                pos = end + 1
            self._headers[key] = cols
        return self._headers[key]


_QUOTED = re.compile(r'"[^"]*"?')


def _split(line: str, delim: str) -> list[str]:
    """Cells of a CSV-style line; a delimiter inside double quotes does not split."""
    if '"' in line:
        line = _QUOTED.sub(lambda m: m.group().replace(delim, " "), line)
    return line.split(delim)


def _cells_before(prefix: str, delim: str) -> int:
    if '"' in prefix:
        prefix = _QUOTED.sub("", prefix)
    return prefix.count(delim)
