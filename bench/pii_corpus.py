"""Generates a labelled PII corpus (JSON lines: text plus gold spans), reproducibly.

    python bench/pii_corpus.py --records 6000 --seed 7 --out bench/results/pii_corpus.jsonl

Faker across seven locales fills templates with names, emails, phones, cards, IBANs, SSNs,
IPs and synthetic secrets; hard negatives (versions, UUIDs, timestamps, dates, prices,
Luhn-failing order numbers, hashes, tracking numbers) are mixed in, unlabelled. Phone numbers
are Faker's, kept only when `phonenumbers` calls them valid: US ones in national format, the
others in international format (a US deployment receiving foreign numbers).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
import uuid
from pathlib import Path

import phonenumbers
from faker import Faker

LOCALES = {
    "en_US": "US",
    "de_DE": "DE",
    "fr_FR": "FR",
    "en_GB": "GB",
    "es_ES": "ES",
    "it_IT": "IT",
    "nl_NL": "NL",
}


def luhn_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


class Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.fakers = {loc: Faker(loc) for loc in LOCALES}
        for i, f in enumerate(self.fakers.values()):
            f.seed_instance(seed + i)

    def faker(self) -> tuple[Faker, str]:
        loc = self.r.choice(list(LOCALES))
        return self.fakers[loc], LOCALES[loc]

    def rand(self, alphabet: str, n: int) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    # -- entities ------------------------------------------------------------------------
    def email(self) -> str:
        f, _ = self.faker()
        return self.r.choice(
            [f.ascii_email, f.ascii_free_email, f.ascii_company_email, f.ascii_safe_email]
        )()

    def phone(self) -> str:
        for _ in range(50):
            f, region = self.faker()
            raw = f.phone_number()
            try:
                num = phonenumbers.parse(raw, region)
            except phonenumbers.NumberParseException:
                continue
            if not phonenumbers.is_valid_number(num):
                continue
            if region == "US":
                return self.r.choice(
                    [
                        phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL),
                        phonenumbers.format_number(
                            num, phonenumbers.PhoneNumberFormat.INTERNATIONAL
                        ),
                    ]
                )
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        return "+1 415 555 0132"

    def card(self) -> str:
        f = self.fakers["en_US"]
        number = f.credit_card_number(
            card_type=self.r.choice(["visa16", "mastercard", "amex", "discover", "visa13", "jcb16"])
        )
        if len(number) == 16 and self.r.random() < 0.5:
            return " ".join(number[i : i + 4] for i in range(0, 16, 4))
        if len(number) == 15 and number[:2] in ("34", "37") and self.r.random() < 0.5:
            return f"{number[:4]} {number[4:10]} {number[10:]}"
        return number

    def iban(self) -> str:
        f, _ = self.faker()
        iban = f.iban()
        return (
            " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
            if self.r.random() < 0.5
            else iban
        )

    def ssn(self) -> str:
        return self.fakers["en_US"].ssn()

    def ip(self) -> str:
        f, _ = self.faker()
        return (
            f.ipv4()
            if self.r.random() < 0.7
            else self.r.choice(
                [
                    f.ipv6(),
                    str(uuid.UUID(int=self.r.getrandbits(128))).replace("-", "")[:4]
                    + "::"
                    + self.rand("0123456789abcdef", 4),
                ]
            )
        )

    def secret(self) -> str:
        kind = self.r.randrange(7)
        alnum = string.ascii_letters + string.digits
        if kind == 0:
            return "AKIA" + self.rand(string.ascii_uppercase + string.digits, 16)
        if kind == 1:
            return "ghp_" + self.rand(alnum, 36)
        if kind == 2:
            b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
            return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': self.rand(string.digits, 8), 'exp': 1893456000})}.{self.rand(alnum + '-_', 43)}"
        if kind == 3:
            return "sk_live_" + self.rand(alnum, 24)
        if kind == 4:
            return "xoxb-" + self.rand(string.digits, 12) + "-" + self.rand(alnum, 24)
        if kind == 5:
            body = "\n".join(self.rand(alnum + "+/", 64) for _ in range(4))
            return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
        return "Bearer " + self.rand(alnum + "._-", 40)

    # -- hard negatives --------------------------------------------------------------------
    def negative(self) -> str:
        f, _ = self.faker()
        k = self.r.randrange(12)
        if k == 0:
            return f"v{self.r.randint(0, 9)}.{self.r.randint(0, 30)}.{self.r.randint(0, 99)}"
        if k == 1:
            return str(uuid.UUID(int=self.r.getrandbits(128)))
        if k == 2:
            return f.date_time().isoformat()
        if k == 3:
            return f.date(pattern=self.r.choice(["%d/%m/%Y", "%m-%d-%Y", "%Y-%m-%d"]))
        if k == 4:  # a card-shaped order number that fails Luhn
            body = "4" + self.rand(string.digits, 14)
            return "ORD-" + body + str((int(luhn_digit(body)) + 1) % 10)
        if k == 5:
            return f"${self.r.randint(1, 99999):,}.{self.r.randint(0, 99):02d}"
        if k == 6:
            return self.rand("0123456789abcdef", 40)
        if k == 7:
            return "1Z" + self.rand(string.ascii_uppercase + string.digits, 16)
        if k == 8:
            return f"{self.r.randint(0, 23):02d}:{self.r.randint(0, 59):02d}:{self.r.randint(0, 59):02d}"
        if k == 9:
            return f"build {self.r.randint(1, 9)}.{self.r.randint(0, 9)}.{self.r.randint(0, 9)}.{self.r.randint(100, 9999)}"
        if k == 10:
            return f"#{self.r.randint(10**6, 10**9)}"
        return f.postcode()

    def filler(self) -> str:
        f, _ = self.faker()
        return f.sentence(nb_words=self.r.randint(4, 14))


TEMPLATES = [
    ("Please contact {name} at {EMAIL}.", ["EMAIL"]),
    ("{name}'s number is {PHONE}, call after {neg}.", ["PHONE"]),
    ("Charge card {CREDIT_CARD} for order {neg}.", ["CREDIT_CARD"]),
    ("Wire the refund to {IBAN} by {neg}.", ["IBAN"]),
    ("SSN on file: {US_SSN}.", ["US_SSN"]),
    ("Login from {IP_ADDRESS} at {neg}", ["IP_ADDRESS"]),
    ("export TOKEN={SECRET}", ["SECRET"]),
    (
        '{{"user": "{name}", "email": "{EMAIL}", "phone": "{PHONE}", "ref": "{neg}"}}',
        ["EMAIL", "PHONE"],
    ),
    ('{neg} INFO user={EMAIL} src={IP_ADDRESS} msg="login ok"', ["EMAIL", "IP_ADDRESS"]),
    (
        "Customer {name} ({EMAIL}, {PHONE}) paid with {CREDIT_CARD}.",
        ["EMAIL", "PHONE", "CREDIT_CARD"],
    ),
    ("Authorization header: {SECRET}", ["SECRET"]),
    ("Release {neg} shipped; see ticket {neg}.", []),
    ("Invoice {neg} total {neg}, due {neg}.", []),
]


def record(g: Gen) -> dict[str, object]:
    """One template filled in, behind a filler sentence; spans are character offsets."""
    template, _ = g.r.choice(TEMPLATES)
    text = g.filler() + " "
    spans: list[list[object]] = []
    pieces = template.replace("{{", "\0").replace("}}", "\1").split("{")
    text += pieces[0]
    for piece in pieces[1:]:
        key, rest = piece.split("}", 1)
        if key == "name":
            value = g.faker()[0].name()
        elif key == "neg":
            value = g.negative()
        else:
            value = getattr(g, ENTITY_METHOD[key])()
            spans.append([len(text), len(text) + len(value), key])
        text += value + rest
    # The braces were placeholders of the same length, so the offsets above still hold.
    return {"text": text.replace("\0", "{").replace("\1", "}"), "spans": spans}


ENTITY_METHOD = {"EMAIL": "email", "PHONE": "phone", "CREDIT_CARD": "card", "IBAN": "iban",
                 "US_SSN": "ssn", "IP_ADDRESS": "ip", "SECRET": "secret"}  # fmt: skip


def build(records: int, seed: int) -> list[dict[str, object]]:
    g = Gen(seed)
    return [record(g) for _ in range(records)]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("bench/results/pii_corpus.jsonl"))
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as fh:
        for rec in build(args.records, args.seed):
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
