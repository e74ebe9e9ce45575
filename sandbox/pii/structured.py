"""Key-aware PII in JSON-like values: what a field's key, the tool's outputSchema or the
deployment's field rules (those two in `sandbox.pii.fields`) say a value is, where no pattern
could tell (names, addresses).

Keys are compared normalized (`customerName`, `Customer-Name` and `customer_name` are one key).
What decides, strongest first:
  1. a field rule (`FieldRule`, from `pii.fields`) whose tools glob matches the result's origin
     and whose path matches the field: its entity, for any non-empty value at or below it;
     entity None turns the key-based entities off there;
  2. the outputSchema: an explicit `"x-pii": "PERSON"` (or false), then the property's title
     and description ("Customer full name", "Street address of the holder");
  3. the key: person keys (`first_name`, `full_name`, `holder`, `customer_name`...) give
     PERSON; street-level address keys (`address`, `street`, `address_line1`, `line1` inside
     an address) give ADDRESS; `phone`, `ssn`, `card_number` keys give PHONE, US_SSN and
     CREDIT_CARD for digit-shaped values (which patterns miss as bare digits).
A bare `name` (or `display_name`) is a person's only in context: inside a person-like parent
(`customer`, `contacts`, `billing`...) or beside person fields (`email`, `birth_date`...);
never inside a thing (`file`, `tool`, `product`, `company`...) or beside thing fields
(`mime_type`, `sku`, `input_schema`...); with no context, only a value shaped like a name (two
to five capitalized words). `file_name`, `tool_name`, `product_name`, `company_name` and
`user_name` (an account id) are not persons. City, state, postcode and country alone are not
tokenized (weak on their own, and aggregations need them): a field rule covers them.
A value a key claims must look the part (a name has no digits and at most 100 characters, an
address has letters, and a bare `address` more than one word), so ids, hosts, flags and prose
keep their pattern scan instead. A name ending in a company form (`Ltd`, `GmbH`, `S.A.`...) is
a company's, under any key but a field rule's.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

PERSON, ADDRESS = "PERSON", "ADDRESS"
KEY_ENTITIES = (PERSON, ADDRESS, "PHONE", "US_SSN", "CREDIT_CARD")
"""What key names alone can mark."""

# How sure a hint is, and so what its value must look like to be taken whole.
RULE, STRONG, ROLE, BARE = "rule", "strong", "role", "bare"


@dataclass(frozen=True)
class Hint:
    entity: str | None
    """None: an explicit "no key-based entity here" (the value's pattern scan still runs)."""
    level: str = STRONG


OFF = Hint(None, RULE)


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# -- key names --------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[\W_]+")
_COMPOUNDS = {
    "fullname": "full name", "firstname": "first name", "lastname": "last name",
    "givenname": "given name", "familyname": "family name", "middlename": "middle name",
    "maidenname": "maiden name", "surname": "sur name", "forename": "fore name",
    "nickname": "nick name", "fname": "first name", "lname": "last name",
    "username": "user name", "displayname": "display name", "filename": "file name",
    "hostname": "host name", "pathname": "path name", "cardholder": "card holder",
    "accountholder": "account holder", "policyholder": "policy holder", "vorname": "first name",
    "nachname": "last name", "prenom": "first name", "apellido": "last name",
    "apellidos": "last name", "cognome": "last name", "nom": "name", "nombre": "name",
    "nome": "name", "adresse": "address", "anschrift": "address", "direccion": "address",
    "indirizzo": "address", "strasse": "street", "streetaddress": "street address",
    "addr": "address", "emailaddress": "email address", "ipaddress": "ip address",
    "phonenumber": "phone number", "cellphone": "cell phone", "telephone": "phone",
    "tel": "phone", "mobile": "phone", "cell": "phone", "fax": "phone", "msisdn": "phone",
    "cardnumber": "card number", "creditcard": "credit card", "addressline": "address line",
}  # fmt: skip
_QUALIFIERS = _set(
    "full first last given family middle maiden legal sur fore nick birth preferred real"
)
_ROLES = _set(
    """customer client contact holder owner person patient employee recipient sender
    beneficiary payee payer guardian parent mother father spouse manager supervisor author
    signer signatory applicant candidate member guest passenger driver student teacher
    doctor physician nurse landlord buyer consignee attendee participant speaker assignee
    reporter requester approver insured subscriber borrower debtor witness caller
    representative rep salesperson lead"""
)
"""Keys that name a person: as a dict's key its `name` is theirs, as a string key the value."""
_PERSON_PARENTS = _ROLES | _set("user people billing shipping emergency profile")
_THINGS = _set(
    """file tool product item server host company org organization organisation project repo
    repository team category tag city country state region location place event brand model
    resource prompt dataset table column field package module function method class service
    app application bucket channel group role plan feature label sku store shop vendor bank
    branch department venue variable env parameter argument property attribute type schema
    image container volume network job task workflow pipeline step stage metric document
    folder directory attachment input output option setting config path key queue topic
    database db index cluster node pod namespace domain site page sheet tab view report
    template font color currency language unit icon"""
)
_PERSON_SIBLINGS = _set(
    """email email_address phone phone_number first_name last_name birth_date date_of_birth dob
    birthday ssn gender sex age nationality passport salutation job_title"""
)
_THING_SIBLINGS = _set(
    """sku price mime_type content_type size size_bytes bytes path version input_schema
    output_schema schema extension checksum sha256 md5 quantity stock isbn manufacturer
    brand population industry uri arguments annotations"""
)
_NOT_POSTAL = _set(
    """email mail ip ipv4 ipv6 mac wallet contract remote local server bind listen web url host
    socket memory mem hardware bitcoin btc eth crypto network net sip peer gateway broadcast
    multicast proxy dns link base ptr pointer virtual node"""
)
_STREET = _set("street line home billing shipping mailing postal residential")
_NOT_NUMBER = _set("id type count verified confirmed code country prefix ext")


@functools.lru_cache(maxsize=8192)
def normalize_key(key: str) -> str:
    """`customerName`, `Customer-Name`, `CUSTOMER_NAME` → `customer_name`; accents dropped."""
    text = _CAMEL.sub("_", key)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NON_WORD.sub("_", text).strip("_").casefold()


@functools.lru_cache(maxsize=8192)
def _words(key: str) -> tuple[str, ...]:
    """The key's words, compounds split, numbering and plurals dropped (`addressLines1` →
    address, line; `customers` → customer)."""
    out: list[str] = []
    for part in normalize_key(key).split("_"):
        part = part.rstrip("0123456789")
        if part:
            out.extend(_singular(w) for w in _COMPOUNDS.get(part, part).split())
    return tuple(out)


def _singular(word: str) -> str:
    if len(word) <= 3 or not word.endswith("s") or word.endswith("ss"):
        return word
    return word[:-2] if word.endswith("sses") else word[:-1]


def dict_context(parent: str, keys: tuple[object, ...]) -> str:
    """`context_of`, remembered for the shapes a result repeats (one per record)."""
    return _context(parent, keys) if len(keys) <= 64 else context_of(parent, keys)


@functools.lru_cache(maxsize=4096)
def _context(parent: str, keys: tuple[object, ...]) -> str:
    return context_of(parent, keys)


def context_of(parent: str, siblings: Iterable[object]) -> str:
    """'person', 'address', 'thing' or '' for a dict: from the key that holds it (its last
    word first: `file_owner` holds a person), then from its own keys."""
    words = _words(parent)
    if words:
        if "address" in words and not any(w in _NOT_POSTAL for w in words):
            return "address"
        if words[-1] in _PERSON_PARENTS:
            return "person"
        if words[-1] in _THINGS:
            return "thing"
        if any(w in _PERSON_PARENTS for w in words):
            return "person"
        if any(w in _THINGS for w in words):
            return "thing"
    norms = {normalize_key(k) for k in siblings if isinstance(k, str)}
    person, thing = bool(norms & _PERSON_SIBLINGS), bool(norms & _THING_SIBLINGS)
    if person != thing:
        return "person" if person else "thing"
    return ""


@functools.lru_cache(maxsize=8192)
def key_hint(key: str, context: str = "") -> Hint | None:
    """What a key alone says its value is; `context` is `context_of` the dict holding it."""
    words = _words(key)
    if not words:
        return None
    last = words[-1]
    if last == "name":
        return _name_hint(words[:-1], context)
    if "address" in words or last == "street":
        if any(w in _NOT_POSTAL for w in words):
            return None
        return Hint(ADDRESS, STRONG if any(w in _STREET for w in words) else ROLE)
    if context == "address" and last in ("line", "street", "house", "building"):
        return Hint(ADDRESS, STRONG)
    if last in _NOT_NUMBER:
        return None
    if "phone" in words:
        return Hint("PHONE")
    if (
        "ssn" in words
        or words[-2:] == ("social", "security")
        or words[-3:-1]
        == (
            "social",
            "security",
        )
    ):
        return Hint("US_SSN")
    if ("card" in words and last in ("number", "no", "num")) or words[-2:] == ("credit", "card"):
        return Hint("CREDIT_CARD")
    if last == "holder":
        return Hint(PERSON, STRONG)
    if last in _ROLES:
        return Hint(PERSON, ROLE)
    return None


def _name_hint(prefix: tuple[str, ...], context: str) -> Hint | None:
    if any(w in _THINGS for w in prefix) or prefix[-1:] == ("user",):
        return None  # user_name is an account's id, not its holder's name
    if any(w in _QUALIFIERS for w in prefix):
        return Hint(PERSON, STRONG)
    if prefix in ((), ("display",)):
        if context == "thing":
            return None
        return Hint(PERSON, STRONG if context in ("person", "address") else BARE)
    if prefix[-1] in _PERSON_PARENTS:
        return Hint(PERSON, STRONG)
    return None


# -- values -----------------------------------------------------------------------------------

_NAME_PUNCT = frozenset(" -'\u2019.,")
_PARTICLES = _set(
    "van von der den de da di del della du le la bin bint al el ibn dos das y zu ter ten"
)
_HONORIFICS = _set("mr mrs ms mx dr prof pan pani herr frau sr sra srta mme mlle sig dott")
_COMPANY_FORMS = _set(
    """ltd llc llp lp inc corp co gmbh ag kg ohg ug bv nv plc sa sas sarl srl spa sl sp oy ab
    kk pty cv scoop group groep holding holdings stichting foundation associates partners
    company corporation limited incorporated"""
)
_PLACEHOLDERS = _set("n/a na none null nil unknown tbd anonymous test redacted")
_TOKENISH = re.compile(r"\[[A-Z][A-Z0-9_]{1,40}\]")
_PHONE = re.compile(r"\+?[\d\s().\-/]{6,24}(?:\s*(?:x|ext\.?|#)\s*\d{1,6})?", re.IGNORECASE)
_SSN = re.compile(r"\d{3}[- ]?\d{2}[- ]?\d{4}")
_CARD = re.compile(r"\d[\d -]{10,24}\d")
_DIGITS = {"PHONE": (7, 15), "US_SSN": (9, 9), "CREDIT_CARD": (12, 19)}
NUMBER_ENTITIES = frozenset(_DIGITS)
"""Entities a key can give to a JSON number (shape checked); others only by a rule."""


def fits(hint: Hint, value: str) -> bool:
    """Whether `value` looks like what `hint` says, enough to become one token whole."""
    v = value.strip()
    if not v or _TOKENISH.fullmatch(v):
        return False
    if hint.entity is None:
        return False
    if hint.level == RULE:
        return True
    if hint.entity == PERSON:
        return _name_like(v, hint.level)
    if hint.entity == ADDRESS:
        return _address_like(v, hint.level)
    if hint.entity in _DIGITS:
        return _digits_like(hint.entity, v)
    return True


def _name_like(v: str, level: str) -> bool:
    if len(v) > 100 or v.casefold() in _PLACEHOLDERS:
        return False
    if not all(c.isalpha() or c in _NAME_PUNCT or unicodedata.combining(c) for c in v):
        return False
    words = v.replace(",", " ").split()
    if not any(c.isalpha() for c in v) or len(words) > 10:
        return False
    bare = [w.replace(".", "").casefold() for w in words]
    if any(w in _COMPANY_FORMS for w in bare[1:]):
        return False  # "Lane Ltd", "Baum GmbH": a company, whatever the key says
    if level == STRONG:
        return True
    proper = [w for w, b in zip(words, bare, strict=True) if b not in _PARTICLES | _HONORIFICS]
    if not proper or not all(w[0].isalpha() and not w[0].islower() for w in proper):
        return False
    if level == ROLE:
        # One all-capitals word under a role key is a code or a constant ("EPERM", "ADMIN").
        return len(proper) <= 5 and not (len(words) == 1 and v.isupper())
    # BARE: two to five words, or one uncased word (a CJK name) of two to four characters.
    if len(words) == 1:
        return not v[0].isupper() and 2 <= len(v) <= 4
    return len(proper) <= 5


def _address_like(v: str, level: str) -> bool:
    if len(v) > 300 or "@" in v or "://" in v or v.casefold() in _PLACEHOLDERS:
        return False
    if not any(c.isalpha() for c in v):
        return False
    if level == STRONG:
        return True
    if not any(c.isspace() or c == "," for c in v):
        # One word is a host, an IP or a wallet, unless its script has no spaces (日本の住所).
        return not v.isascii() and any(c.isdigit() for c in v)
    return True


def _digits_like(entity: str, v: str) -> bool:
    shape = {"PHONE": _PHONE, "US_SSN": _SSN, "CREDIT_CARD": _CARD}[entity]
    if not shape.fullmatch(v):
        return False
    main = re.split(r"(?i)x|ext|#", v, maxsplit=1)[0]
    lo, hi = _DIGITS[entity]
    return lo <= sum(1 for c in main if c.isdigit()) <= hi
