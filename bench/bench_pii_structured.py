"""Names and addresses in structured tool results: precision, recall and cost.

    python bench/bench_pii_structured.py [--records 4500] [--seed 11]

The corpus is generated here, reproducibly: CRM-like JSON records in the shapes of real APIs
(a generic CRM, HubSpot and Salesforce contacts, Stripe customers, GitHub commits, Google
Drive files, invoices, bank accounts, people lists) filled by Faker in ten locales, mixed
with negatives where a `name` is a thing's (products, files, MCP tool listings, companies,
offices, campaigns) and with free-text notes that mention a person. Every string leaf is
labelled PERSON, ADDRESS or nothing. A leaf counts as predicted when its tokenized value holds
a token of that entity. Names inside free text are NER territory (the Presidio adapter) and
are reported apart. The misses are listed by field, most frequent first.

Cost: CPU seconds (best of 3) to tokenize the whole corpus with a fresh session each time, as
Python objects, as one JSON text (a tool returning a 1-MB-class export as text), and with key
rules off (the pattern scan alone over the same structure); MB are the corpus's JSON bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from faker import Faker

from sandbox.pii import Detector, FieldRules, MasterKeys, Tokenizer

LOCALES = ["en_US", "de_DE", "fr_FR", "en_GB", "es_ES", "it_IT", "nl_NL", "pt_BR", "pl_PL", "ja_JP"]
ENTITIES = ("PERSON", "ADDRESS")


class Gold:
    """A labelled leaf while a record is built: PERSON, ADDRESS or NOTE (a name in prose)."""

    def __init__(self, entity: str, value: str) -> None:
        self.entity, self.value = entity, value


def P(v: str) -> Gold:  # a label in the templates: short on purpose
    return Gold("PERSON", v)


def A(v: str) -> Gold:
    return Gold("ADDRESS", v)


class Corpus:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.fakers = [Faker(loc) for loc in LOCALES]
        for i, f in enumerate(self.fakers):
            f.seed_instance(seed + i)

    def f(self) -> Faker:
        return self.r.choice(self.fakers)

    def product(self) -> str:
        adj = ["Ergonomic", "Rustic", "Sleek", "Refined", "Handcrafted", "Smart", "Generic"]
        mat = ["Steel", "Wooden", "Cotton", "Granite", "Bronze", "Plastic", "Frozen"]
        noun = ["Chair", "Table", "Gloves", "Keyboard", "Lamp", "Bike", "Shoes", "Towels"]
        return f"{self.r.choice(adj)} {self.r.choice(mat)} {self.r.choice(noun)}"

    def phone(self, f: Faker) -> str:
        return str(f.phone_number())

    # -- templates: each returns one record with Gold leaves ----------------------------
    def crm(self) -> dict[str, Any]:
        f, g = self.f(), self.f()
        return {
            "id": str(uuid.UUID(int=self.r.getrandbits(128))),
            "full_name": P(f.name()),
            "email": f.email(),
            "phone": self.phone(f),
            "company_name": f.company(),
            "job_title": f.job(),
            "address": {
                "street": A(f.street_address()),
                "city": f.city(),
                "postcode": f.postcode(),
                "country": f.current_country_code(),
            },
            "owner": {"name": P(g.name()), "email": g.email()},
            "tags": ["vip", "newsletter"],
        }

    def hubspot(self) -> dict[str, Any]:
        f = self.f()
        return {
            "id": str(self.r.randrange(10**6)),
            "properties": {
                "firstname": P(f.first_name()),
                "lastname": P(f.last_name()),
                "email": f.email(),
                "phone": self.phone(f),
                "company": f.company(),
                "address": A(f.street_address()),
                "city": f.city(),
                "zip": f.postcode(),
                "lifecyclestage": "lead",
            },
        }

    def salesforce(self) -> dict[str, Any]:
        f, g = self.f(), self.f()
        first, last = f.first_name(), f.last_name()
        return {
            "attributes": {"type": "Contact", "url": f"/services/data/v59.0/{self.r.random()}"},
            "Id": "003" + uuid.UUID(int=self.r.getrandbits(128)).hex[:15],
            "Name": P(f"{first} {last}"),
            "FirstName": P(first),
            "LastName": P(last),
            "MailingStreet": A(f.street_address()),
            "MailingCity": f.city(),
            "MailingPostalCode": f.postcode(),
            "Account": {"Name": f.company()},
            "Owner": {"Name": P(g.name())},
        }

    def stripe(self) -> dict[str, Any]:
        f = self.f()
        name = f.name()

        def address() -> dict[str, Any]:
            line2 = f"Apt. {self.r.randrange(1, 999)}" if self.r.random() < 0.4 else None
            return {
                "line1": A(f.street_address()),
                "line2": A(line2) if line2 else None,
                "city": f.city(),
                "postal_code": f.postcode(),
                "country": f.current_country_code(),
            }

        return {
            "id": "cus_" + uuid.UUID(int=self.r.getrandbits(128)).hex[:14],
            "object": "customer",
            "name": P(name),
            "email": f.email(),
            "phone": self.phone(f),
            "description": f.catch_phrase(),
            "address": address(),
            "shipping": {"name": P(name), "address": address()},
        }

    def github(self) -> dict[str, Any]:
        f, g = self.f(), self.f()
        date = f.iso8601()
        return {
            "sha": uuid.UUID(int=self.r.getrandbits(128)).hex + "abcd1234",
            "commit": {
                "author": {"name": P(f.name()), "email": f.email(), "date": date},
                "committer": {"name": P(g.name()), "email": g.email(), "date": date},
                "message": f"Fix {f.word()} handling in {f.word()}.py",
            },
            "author": {"login": f.user_name(), "id": self.r.randrange(10**7)},
            "files": [{"filename": f"src/{f.word()}.py", "additions": 3, "status": "modified"}],
        }

    def drive(self) -> dict[str, Any]:
        f, g = self.f(), self.f()
        title = f.catch_phrase().title() if self.r.random() < 0.5 else f"{f.word()} report.xlsx"
        return {
            "files": [
                {
                    "id": uuid.UUID(int=self.r.getrandbits(128)).hex,
                    "name": title,
                    "mimeType": "application/vnd.google-apps.spreadsheet",
                    "owners": [{"displayName": P(f.name()), "emailAddress": f.email()}],
                    "lastModifyingUser": {"displayName": P(g.name())},
                }
            ]
        }

    def invoice(self) -> dict[str, Any]:
        f = self.f()
        return {
            "invoice_number": f"INV-{self.r.randrange(10**6):06d}",
            "bill_to": {"name": P(f.name()), "address": A(f.address())},
            "vendor": {"name": self.f().company()},
            "lines": [{"description": self.product(), "amount": self.r.randrange(100, 9999)}],
        }

    def bank(self) -> dict[str, Any]:
        f = self.f()
        return {"account_holder": P(f.name()), "iban": f.iban(), "bank_name": f.company()}

    def people(self) -> dict[str, Any]:
        return {"people": [{"name": P(self.f().name()), "role": "Engineer"} for _ in range(2)]}

    def generic_person(self) -> dict[str, Any]:
        return {"name": P(self.f().name()), "status": "active", "score": self.r.randrange(100)}

    def note(self) -> dict[str, Any]:
        f = self.f()
        return {
            "ticket_id": self.r.randrange(10**5),
            "subject": "Callback",
            "body": Gold("NOTE", f"Please call {f.name()} back about the renewal."),
        }

    # negatives: a `name` (or title) that is a thing's
    def products(self) -> dict[str, Any]:
        items = [
            {"name": self.product(), "sku": f"SKU-{self.r.randrange(10**5)}", "price": 9.5}
            for _ in range(2)
        ]
        return {"products": items}

    def tools(self) -> dict[str, Any]:
        word = self.f().word()
        return {
            "tools": [
                {
                    "name": f"search_{word}",
                    "title": f"Search {word.title()}",
                    "description": f"Search the {word} index.",
                    "inputSchema": {"type": "object"},
                }
            ]
        }

    def companies(self) -> dict[str, Any]:
        f = self.f()
        return {"companies": [{"name": f.company(), "industry": f.bs(), "city": f.city()}]}

    def offices(self) -> dict[str, Any]:
        f = self.f()
        return {"locations": [{"name": f"{f.city()} Office", "timezone": f.timezone()}]}

    def campaign(self) -> dict[str, Any]:
        name = self.f().catch_phrase().title()
        return {"name": name, "status": "active", "budget": self.r.randrange(10**4)}

    def records(self, n: int) -> list[Any]:
        makers: list[Callable[[], dict[str, Any]]] = [
            self.crm, self.hubspot, self.salesforce, self.stripe, self.github, self.drive,
            self.invoice, self.bank, self.people, self.generic_person, self.note,
            self.products, self.tools, self.companies, self.offices, self.campaign,
        ]  # fmt: skip
        return [makers[i % len(makers)]() for i in range(n)]


def split(obj: Any, path: tuple[Any, ...] = ()) -> tuple[Any, dict[tuple[Any, ...], Gold]]:
    """A plain record and its labels by path."""
    labels: dict[tuple[Any, ...], Gold] = {}

    def walk(o: Any, p: tuple[Any, ...]) -> Any:
        if isinstance(o, Gold):
            labels[p] = o
            return o.value
        if isinstance(o, dict):
            return {k: walk(v, (*p, k)) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v, (*p, i)) for i, v in enumerate(o)]
        return o

    return walk(obj, path), labels


def leaves(obj: Any, p: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    out: dict[tuple[Any, ...], Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(leaves(v, (*p, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(leaves(v, (*p, i)))
    else:
        out[p] = obj
    return out


_TOKEN = re.compile(r"\[(PERSON|ADDRESS)_\d+\]")


def score(records: list[Any], labels: list[dict[Any, Gold]], out: list[Any]) -> dict[str, Any]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    misses: Counter[str] = Counter()
    example: dict[str, str] = {}
    notes = notes_hit = 0
    for rec, lab, res in zip(records, labels, out, strict=True):
        got = leaves(res)
        for path, value in leaves(rec).items():
            gold = lab.get(path)
            pred = {m.group(1) for m in _TOKEN.finditer(str(got.get(path, "")))}
            if gold is not None and gold.entity == "NOTE":
                notes += 1
                notes_hit += "PERSON" in pred
                continue
            for ent in ENTITIES:
                is_gold = gold is not None and gold.entity == ent
                if ent in pred and is_gold:
                    tp[ent] += 1
                elif ent in pred or is_gold:
                    kind = "FP" if ent in pred else "FN"
                    (fp if ent in pred else fn)[ent] += 1
                    where = ".".join(str(k) for k in path if not isinstance(k, int))
                    misses[f"{kind} {ent} {where}"] += 1
                    example.setdefault(f"{kind} {ent} {where}", repr(value)[:60])
    table = {}
    for ent in ENTITIES:
        p = tp[ent] / ((tp[ent] + fp[ent]) or 1)
        r = tp[ent] / ((tp[ent] + fn[ent]) or 1)
        table[ent] = (p, r, 2 * p * r / ((p + r) or 1), tp[ent] + fn[ent])
    misses_with = {f"{k} (e.g. {example[k]})": n for k, n in misses.items()}
    return {"table": table, "notes": (notes_hit, notes), "misses": Counter(misses_with)}


def cpu(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=4500)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--misses", type=int, default=12)
    args = ap.parse_args()
    keys = MasterKeys({"k": os.urandom(32)}, "k")
    detector = Detector()
    pairs = [split(r) for r in Corpus(args.seed).records(args.records)]
    records, labels = [p[0] for p in pairs], [p[1] for p in pairs]
    text = json.dumps(records, ensure_ascii=False)
    mb = len(text.encode()) / 1e6

    def session(keys_on: bool = True) -> Tokenizer:
        return Tokenizer.for_session(keys, "bench", detector, FieldRules(keys=keys_on))

    result = score(records, labels, session().tokenize(records))
    baseline = score(records, labels, session(False).tokenize(records))
    print(f"### structured records: {args.records} records, {mb:.2f} MB of JSON, seed {args.seed}")
    print("\n| detector | PERSON | ADDRESS |\n|---|---:|---:|")
    for label, res in (("key-aware (default)", result), ("patterns only (keys off)", baseline)):
        cells = [f"{f:.3f} ({p:.2f}/{r:.2f})" for p, r, f, _ in res["table"].values()]
        print(f"| {label} | " + " | ".join(cells) + " |")
    gold = ", ".join(f"{e} {v[3]}" for e, v in result["table"].items())
    hit, total = result["notes"]
    print(f"\ncells: F1 (precision/recall); gold leaves: {gold}; names inside free text "
          f"tokenized: {hit}/{total}")  # fmt: skip
    if args.misses:
        print("\nmost frequent misses:")
        for miss, n in result["misses"].most_common(args.misses):
            print(f"  {n:4d}  {miss}")

    as_objects = cpu(lambda: session().tokenize(records))
    as_text = cpu(lambda: session().tokenize(text))
    keys_off = cpu(lambda: session(False).tokenize(records))
    scan_only = cpu(lambda: detector.detect(text))
    print("\n### cost, MB/s on one core (CPU time, best of 3, fresh session each run)\n")
    print("| tokenize(records) | tokenize(JSON text) | keys off | detect() on the JSON text |")
    print("|---:|---:|---:|---:|")
    print(
        " | ".join(
            ["", *(f"{mb / s:.1f}" for s in (as_objects, as_text, keys_off, scan_only)), ""]
        ).strip()
    )


if __name__ == "__main__":
    main()
