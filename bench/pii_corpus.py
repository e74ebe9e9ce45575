"""A labelled PII corpus (JSON lines: text plus gold spans) in two parts, reproducibly.

    python bench/pii_corpus.py --part tuning  --records 3000 --seed 11
    python bench/pii_corpus.py --part heldout --records 3000 --seed 29
    (defaults write bench/corpus/pii_<part>.jsonl, the files bench_pii.py and the tests read)

Values come from Faker used as generated: `phone_number()` of each locale as it is (only
numbers written with non-ASCII digits or fewer than 7 digits are left out, which nobody could
find), emails, IBANs, card numbers of every type, US SSNs, public IPv4 and IPv6 addresses,
and synthetic secrets. Private and loopback addresses, like versions, UUIDs, dates, times,
prices, order numbers, hashes, ids, postcodes and MAC addresses, are hard negatives
(unlabelled) placed among them, as is synthetic program output.

The parts share nothing: the held-out one has its own seed, its own ten locales, and four
layouts the tuning part never has (email signatures, Markdown tables, YAML and vCards) beside
the four it shares (prose, CSV, JSON, logs). Rules are tuned on the tuning part only.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import random
import string
import uuid
from pathlib import Path

from faker import Faker

TUNING_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR",
                  "ja_JP", "en_IN")  # fmt: skip
HELDOUT_LOCALES = ("en_CA", "en_AU", "en_NZ", "de_AT", "de_CH", "fr_CH", "pl_PL", "sv_SE",
                   "pt_PT", "ru_RU")  # fmt: skip
ENTITIES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "SECRET")
CARD_TYPES = ("visa16", "visa13", "visa19", "mastercard", "amex", "discover", "diners",
              "jcb15", "jcb16", "maestro")  # fmt: skip
_PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
            "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "fc00::/7", "fe80::/10")]  # fmt: skip


def luhn_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


class Gen:
    """Entity values, hard negatives and filler, from one seed and a set of locales."""

    def __init__(self, seed: int, locales: tuple[str, ...]) -> None:
        self.r = random.Random(seed)
        self.locales = locales
        self.fakers = {loc: Faker(loc) for loc in locales}
        for i, f in enumerate(self.fakers.values()):
            f.seed_instance(seed * 100 + i)
        self.us = Faker("en_US")
        self.us.seed_instance(seed * 100 + 99)

    def faker(self) -> Faker:
        return self.fakers[self.r.choice(self.locales)]

    def rand(self, alphabet: str, n: int) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    # -- entities ------------------------------------------------------------------------
    def email(self) -> str:
        for _ in range(20):
            value: str = self.faker().email()
            if value.isascii():
                return value
        return self.us.email()

    def phone(self) -> str:
        for _ in range(50):
            value: str = self.faker().phone_number()
            digits = [c for c in value if c.isdigit()]
            if value.isascii() and len(digits) >= 7:
                return value
        return self.us.phone_number()

    def card(self) -> str:
        number: str = self.us.credit_card_number(card_type=self.r.choice(CARD_TYPES))
        style = self.r.random()
        if len(number) == 16 and style < 0.4:
            sep = self.r.choice(" -")
            return sep.join(number[i : i + 4] for i in range(0, 16, 4))
        if len(number) == 15 and number[:2] in ("34", "37") and style < 0.4:
            return f"{number[:4]} {number[4:10]} {number[10:]}"
        return number

    def iban(self) -> str:
        value: str = self.faker().iban()
        if self.r.random() < 0.5:
            return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
        return value

    def ssn(self) -> str:
        value: str = self.us.ssn()
        return value

    def ip(self) -> str:
        f = self.faker()
        while True:
            value: str = f.ipv4_public() if self.r.random() < 0.7 else f.ipv6()
            if not any(ipaddress.ip_address(value) in n for n in _PRIVATE):
                return value

    def secret(self, one_line: bool = False) -> str:
        kind = self.r.randrange(7)
        if one_line and kind == 5:
            kind = 6
        alnum = string.ascii_letters + string.digits
        if kind == 0:
            return "AKIA" + self.rand(string.ascii_uppercase + string.digits, 16)
        if kind == 1:
            return "ghp_" + self.rand(alnum, 36)
        if kind == 2:

            def b64(d: dict[str, object]) -> str:
                return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

            claims = {"sub": self.rand(string.digits, 8), "exp": 1893456000}
            return (
                f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.{self.rand(alnum + '-_', 43)}"
            )
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
        f, r = self.faker(), self.r
        k = r.randrange(24)
        simple = {
            0: lambda: f"v{r.randint(0, 9)}.{r.randint(0, 30)}.{r.randint(0, 99)}",
            1: lambda: str(uuid.UUID(int=r.getrandbits(128))),
            2: lambda: f.date_time().isoformat(),
            3: lambda: f.date(pattern=r.choice(["%d/%m/%Y", "%m-%d-%Y", "%Y-%m-%d", "%d.%m.%Y"])),
            5: lambda: f"${r.randint(1, 99999):,}.{r.randint(0, 99):02d}",
            6: lambda: self.rand("0123456789abcdef", 40),
            7: lambda: "1Z" + self.rand(string.ascii_uppercase + string.digits, 16),
            8: lambda: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
            9: lambda: (
                f"build {r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(100, 9999)}"
            ),
            10: lambda: f"#{r.randint(10**6, 10**9)}",
            11: lambda: str(f.postcode()),
            12: lambda: f"{r.randint(1, 999)} {r.randint(0, 999):03d},{r.randint(0, 99):02d} €",
            13: lambda: f"ORD-{r.randint(2015, 2026)}-{r.randint(0, 999999):06d}",
            14: lambda: ":".join(self.rand("0123456789abcdef", 2) for _ in range(6)),
            15: lambda: str(f.ipv4_private()),
            16: lambda: f"{r.uniform(-90, 90):.4f}, {r.uniform(-180, 180):.4f}",
            17: lambda: f"{r.randint(1, 99)}.{r.randint(0, 9)}% of {r.randint(1000, 99999):,}",
            18: lambda: str(r.randint(10**7, 10**11)),
            19: lambda: (
                f"978-{r.randint(0, 9)}-{r.randint(100, 999)}-{r.randint(10000, 99999)}-{r.randint(0, 9)}"
            ),
            20: lambda: (
                f"{r.randint(1, 900)} ms, {r.randint(1, 64)} MiB, port {r.randint(1024, 65535)}"
            ),
            21: lambda: f"{r.randint(1, 28):02d} {r.randint(1, 12):02d} {r.randint(1990, 2030)}",
            22: lambda: f"Room {r.randint(100, 4999)}, floor {r.randint(1, 40)}",
            23: lambda: f"{r.randint(1_000_000, 2_000_000_000)} bytes",
        }
        if k == 4:  # a card-shaped order number that fails Luhn
            body = "4" + self.rand(string.digits, 14)
            return "ORD-" + body + str((int(luhn_digit(body)) + 1) % 10)
        return simple.get(k, simple[0])()

    def name(self) -> str:
        value: str = self.faker().name()
        return value

    def company(self) -> str:
        value: str = self.faker().company()
        return value

    def city(self) -> str:
        value: str = self.faker().city()
        return value

    def address(self) -> str:
        value: str = self.faker().address()
        return value.replace("\n", ", ")

    def sentence(self) -> str:
        value: str = self.faker().sentence(nb_words=self.r.randint(4, 14))
        return value


def build(part: str, records: int, seed: int) -> list[dict[str, object]]:
    from pii_layouts import HELDOUT_LAYOUTS, TUNING_LAYOUTS

    locales, layouts = (
        (TUNING_LOCALES, TUNING_LAYOUTS) if part == "tuning" else (HELDOUT_LOCALES, HELDOUT_LAYOUTS)
    )
    g = Gen(seed, locales)
    out = []
    for _ in range(records):
        doc = g.r.choice(layouts)(g)
        out.append({"text": doc.text, "spans": doc.spans, "layout": doc.layout})
    return out


def load(path: Path) -> tuple[list[str], list[list[tuple[int, int, str]]]]:
    """(texts, gold spans) of a corpus file."""
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["text"] for r in recs], [[(s, e, k) for s, e, k in r["spans"]] for r in recs]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--part", choices=("tuning", "heldout"), default="tuning")
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=None, help="default: 11 tuning, 29 held-out")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else (11 if args.part == "tuning" else 29)
    out = args.out or Path(__file__).parent / "corpus" / f"pii_{args.part}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as fh:
        for rec in build(args.part, args.records, seed):
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(out)


if __name__ == "__main__":
    main()
