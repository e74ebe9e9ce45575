"""Layouts of the PII corpus: how the values of `pii_corpus.Gen` sit in real-world text.

Tuning: prose, CSV, JSON, logs, program output. Held-out: its own prose sentences, CSV, JSON,
logs, program output, and email signatures, Markdown tables, YAML and vCards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pii_corpus import Gen


class Doc:
    """Text being written, with the character spans of the labelled values in it."""

    def __init__(self, layout: str) -> None:
        self.layout = layout
        self.parts: list[str] = []
        self.spans: list[list[object]] = []
        self.size = 0

    def t(self, s: str) -> Doc:
        self.parts.append(s)
        self.size += len(s)
        return self

    def e(self, kind: str, value: str) -> Doc:
        self.spans.append([self.size, self.size + len(value), kind])
        return self.t(value)

    @property
    def text(self) -> str:
        return "".join(self.parts)


VALUE = {"EMAIL": "email", "PHONE": "phone", "CREDIT_CARD": "card", "IBAN": "iban",
         "US_SSN": "ssn", "IP_ADDRESS": "ip", "SECRET": "secret"}  # fmt: skip


def fill(g: Gen, doc: Doc, template: str) -> Doc:
    """Fill `{ENTITY}`, `{neg}`, `{name}`, `{company}`, `{city}` in a one-line template."""
    rest = template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        key, _, rest = tail.partition("}")
        doc.t(head)
        if key in VALUE:
            doc.e(key, getattr(g, VALUE[key])())
        elif key == "neg":
            doc.t(g.negative())
        else:
            doc.t(getattr(g, key)())
    return doc.t(rest)


TUNING_PROSE = [
    "Please contact {name} at {EMAIL} or {PHONE}.",
    "{name}'s number is {PHONE}, call after {neg}.",
    "Charge card {CREDIT_CARD} for order {neg}.",
    "Wire the refund to {IBAN} by {neg}.",
    "SSN on file: {US_SSN}.",
    "Login from {IP_ADDRESS} at {neg}",
    "export TOKEN={SECRET}",
    "Customer {name} ({EMAIL}, {PHONE}) paid with {CREDIT_CARD}.",
    "You can reach {name} on {PHONE} or by mail.",
    "Release {neg} shipped; see ticket {neg}.",
    "Invoice {neg} total {neg}, due {neg}.",
    "{company} moved to {city}; new switchboard {PHONE}.",
    "Authorization header: {SECRET}",
]
HELDOUT_PROSE = [
    "Hi, this is {name} from {company}. Ring me back at {PHONE} when you can.",
    "Reminder: {name} ({PHONE}) asked about reference {neg}.",
    "The transfer to {IBAN} failed at {neg}; the customer's mail is {EMAIL}.",
    "Fraud check: card {CREDIT_CARD} used from {IP_ADDRESS} on {neg}.",
    "Her social security number is {US_SSN} and her cell is {PHONE}.",
    "Meeting moved to {neg}, room {neg}. Dial-in: {PHONE}.",
    "Build {neg} passed in {neg}; artifact {neg}.",
    "{name} <{EMAIL}> wrote: please update my number to {PHONE}.",
    "curl -H 'Authorization: {SECRET}' https://api.example.com/v1/items",
]


def prose(g: Gen, templates: list[str], layout: str) -> Doc:
    doc = Doc(layout)
    for i in range(g.r.randint(1, 3)):
        doc.t(" " if i else "").t(g.sentence() + " ")
        fill(g, doc, g.r.choice(templates))
    return doc


def person(g: Gen) -> dict[str, tuple[str, str]]:
    """A record: field → (entity or "", value)."""
    rec = {"id": ("", str(g.r.randint(1, 10**6))), "name": ("", g.name()),
           "email": ("EMAIL", g.email()), "phone": ("PHONE", g.phone()),
           "city": ("", g.city()), "created": ("", g.negative())}  # fmt: skip
    extra = g.r.sample(["card", "iban", "ssn", "ip", "amount", "ref", "api_key"], 2)
    for k in extra:
        rec[k] = {"card": ("CREDIT_CARD", g.card()), "iban": ("IBAN", g.iban()),
                  "ssn": ("US_SSN", g.ssn()), "ip": ("IP_ADDRESS", g.ip()),
                  "amount": ("", g.negative()), "ref": ("", g.negative()),
                  "api_key": ("SECRET", g.secret(one_line=True))}[k]  # fmt: skip
    return rec


PHONE_KEYS = ["phone", "Phone", "phone_number", "Telephone", "mobile", "tel", "Contact number"]


def csv(g: Gen) -> Doc:
    doc = Doc("csv")
    delim = g.r.choice([",", ";", "\t"])
    rows = [person(g) for _ in range(g.r.randint(2, 6))]
    keys = list(rows[0])
    g.r.shuffle(keys)
    phone_key = g.r.choice(PHONE_KEYS)
    doc.t(delim.join(phone_key if k == "phone" else k for k in keys) + "\n")
    for row in rows:
        for i, k in enumerate(keys):
            kind, value = row.get(k, ("", ""))
            doc.t(delim if i else "")
            quoted = delim in value or '"' in value
            doc.t('"' if quoted else "")
            doc.e(kind, value) if kind else doc.t(value)
            doc.t('"' if quoted else "")
        doc.t("\n")
    return doc


def json_layout(g: Gen) -> Doc:
    doc = Doc("json")
    pretty = g.r.random() < 0.5
    rows = [person(g) for _ in range(g.r.randint(1, 3))]
    doc.t("[" + ("\n" if pretty else ""))
    for n, row in enumerate(rows):
        doc.t(("  {\n" if pretty else "{") if not n else (",\n  {\n" if pretty else ", {"))
        for i, (k, (kind, value)) in enumerate(row.items()):
            key = g.r.choice(["phone", "phoneNumber", "mobile", "tel"]) if k == "phone" else k
            doc.t(("" if not i else (",\n" if pretty else ", ")) + ("    " if pretty else ""))
            doc.t(json.dumps(key) + ": ")
            encoded = json.dumps(value, ensure_ascii=False)
            doc.t('"').e(kind, encoded[1:-1]).t('"') if kind else doc.t(encoded)
        doc.t("\n  }" if pretty else "}")
    return doc.t("\n]" if pretty else "]")


def log(g: Gen) -> Doc:
    doc = Doc("log")
    for _ in range(g.r.randint(2, 6)):
        ts = f"2026-{g.r.randint(1, 12):02d}-{g.r.randint(1, 28):02d}T{g.r.randint(0, 23):02d}:{g.r.randint(0, 59):02d}:{g.r.randint(0, 59):02d}.{g.r.randint(0, 999):03d}Z"
        level = g.r.choice(["INFO", "WARN", "DEBUG", "ERROR"])
        doc.t(f"{ts} {level} [{g.r.choice(['auth', 'billing', 'crm-sync', 'notify'])}] ")
        fill(g, doc, g.r.choice([
            'user={EMAIL} src={IP_ADDRESS} msg="login ok" req={neg}',
            "sms queued to={PHONE} template=otp attempt={neg}",
            "payment card={CREDIT_CARD} amount={neg} status=declined",
            "payout iban={IBAN} batch={neg}",
            "request_id={neg} latency={neg} upstream=10.0.3.7:8443",
            "cache miss key=user:{neg} ttl={neg}",
            "contact updated id={neg} phone={PHONE} email={EMAIL}",
            "outbound call to={PHONE} auth={SECRET}",
        ]))  # fmt: skip
        doc.t("\n")
    return doc


def program(g: Gen) -> Doc:
    """Synthetic program output: numbers, paths, addresses and ids, none of them PII."""
    doc = Doc("program")
    r = g.r
    lines = [
        lambda: (
            f'  File "/app/svc/{r.choice(["db", "api", "jobs"])}.py", line {r.randint(1, 2000)}, in {r.choice(["handle", "run", "_fetch"])}'
        ),
        lambda: (
            f"error[E0{r.randint(200, 799)}]: mismatched types in std::io::Result<Vec<u8>> at src/main.rs:{r.randint(1, 400)}:{r.randint(1, 80)}"
        ),
        lambda: (
            f"    at com.example.{r.choice(['Order', 'User'])}Service.load({r.choice(['Order', 'User'])}Service.java:{r.randint(10, 999)})"
        ),
        lambda: (
            f"goroutine {r.randint(1, 400)} [running]:\nmain.main()\n\t/src/main.go:{r.randint(5, 300)} +0x{r.randint(16, 4095):x}"
        ),
        lambda: (
            f"root {r.randint(1, 99999):>7} {r.random():.1f} {r.random():.1f} {r.randint(10000, 999999)} {r.randint(1000, 99999)} ?  Ss {r.randint(0, 23):02d}:{r.randint(0, 59):02d} 0:00 /usr/bin/python3"
        ),
        lambda: (
            f"/dev/sda{r.randint(1, 4)} {r.randint(10**6, 10**9)} {r.randint(10**5, 10**8)} {r.randint(10**5, 10**8)} {r.randint(1, 99)}% /"
        ),
        lambda: (
            f"    link/ether {':'.join(g.rand('0123456789abcdef', 2) for _ in range(6))} brd ff:ff:ff:ff:ff:ff"
        ),
        lambda: (
            f"    inet {g.r.choice(['10', '172.17', '192.168.1'])}.0.{r.randint(2, 254)}/16 scope global eth0"
        ),
        lambda: f"0::/system.slice/docker-{g.rand('0123456789abcdef', 64)}.scope",
        lambda: f"{g.negative()} {g.negative()} {g.negative()}",
        lambda: (
            f"test_{r.choice(['api', 'db'])}.py::test_case[{r.randint(0, 99)}] PASSED [{r.randint(1, 100):>3}%]"
        ),
    ]
    for _ in range(r.randint(3, 8)):
        doc.t(r.choice(lines)() + "\n")
    return doc


def signature(g: Gen) -> Doc:
    doc = Doc("signature")
    doc.t(g.r.choice(["Best regards,", "Kind regards,", "Cheers,", "Thanks,"]) + "\n")
    doc.t(f"{g.name()}\n{g.company()}\n")
    for label in g.r.sample(["T: ", "M: ", "Tel: ", "Mobile: ", "Phone: ", "Office ", "Fax: "], 2):
        doc.t(label).e("PHONE", g.phone()).t(g.r.choice(["\n", " | "]))
    doc.e("EMAIL", g.email()).t("\n" + g.address() + "\n")
    return doc


def table(g: Gen) -> Doc:
    doc = Doc("table")
    rows = [person(g) for _ in range(g.r.randint(2, 5))]
    keys = ["name", "phone", "email", "city"]
    g.r.shuffle(keys)
    doc.t("| " + " | ".join(k.capitalize() for k in keys) + " |\n")
    doc.t("|" + "---|" * len(keys) + "\n")
    for row in rows:
        doc.t("|")
        for k in keys:
            kind, value = row[k]
            doc.t(" ").e(kind, value).t(" |") if kind else doc.t(f" {value} |")
        doc.t("\n")
    return doc


def yaml(g: Gen) -> Doc:
    doc = Doc("yaml")
    doc.t("contacts:\n")
    for row in (person(g) for _ in range(g.r.randint(1, 3))):
        for i, (k, (kind, value)) in enumerate(row.items()):
            doc.t(("  - " if not i else "    ") + k + ": ")
            doc.e(kind, value).t("\n") if kind else doc.t(json.dumps(value) + "\n")
    return doc


def vcard(g: Gen) -> Doc:
    doc = Doc("vcard")
    doc.t(f"BEGIN:VCARD\nVERSION:3.0\nFN:{g.name()}\nORG:{g.company()}\n")
    doc.t("TEL;TYPE=CELL:").e("PHONE", g.phone()).t("\nTEL;TYPE=WORK,VOICE:")
    doc.e("PHONE", g.phone()).t("\nEMAIL:").e("EMAIL", g.email()).t("\nEND:VCARD\n")
    return doc


Layout = Callable[["Gen"], Any]
TUNING_LAYOUTS: list[Layout] = [
    lambda g: prose(g, TUNING_PROSE, "prose"), csv, json_layout, log, program,
]  # fmt: skip
HELDOUT_LAYOUTS: list[Layout] = [
    lambda g: prose(g, HELDOUT_PROSE, "prose"), csv, json_layout, log, program,
    signature, table, yaml, vcard,
]  # fmt: skip
