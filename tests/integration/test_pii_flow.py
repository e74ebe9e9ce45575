"""PII on every path toward the model, end to end with the example CRM and mailer servers.

Each test fails if one raw value leaks: the sandbox and the run's output hold tokens only,
while the upstream tool receives the real values.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Orchestrator, Session

ROOT = Path(__file__).parents[2]
RAW = [
    "maria.gonzalez@example.com",
    "+1 415 555 0132",
    "jonas.weber@beispiel.de",
    "+49 30 901820",
    "aiko.tanaka@example.jp",
    "sam.okafor@example.ng",
    "chloe.martin@exemple.fr",
]


# The mailer may receive crm's emails as recipients, and names and phones in a mail's body
# (without these rules crm's values go back only to crm: tests/integration/test_pii_policy.py).
CRM_TO_MAILER = [
    {"entities": ["EMAIL"], "from": "crm.*", "to": "mailer.send_email", "args": ["to"]},
    {"entities": ["PERSON", "PHONE"], "from": "crm.*", "to": "mailer.send_email", "args": ["body"]},
]


@pytest.fixture(scope="module")
def porc(make_settings) -> Iterator[Orchestrator]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        controller_id=make_settings().controller_id + "p", pii={"restore_rules": CRM_TO_MAILER}
    )
    config = {
        "mcpServers": {
            "crm": {"command": sys.executable, "args": [str(ROOT / "examples/mcp_servers/crm.py")]},
            "mailer": {
                "command": sys.executable,
                "args": [str(ROOT / "examples/mcp_servers/mailer.py")],
                "shared": True,  # one outbox whoever sends: the tests read it directly
            },
        }
    }
    with Orchestrator(settings, mcp_config=config) as orc:
        yield orc


@pytest.fixture
def ps(porc: Orchestrator) -> Iterator[Session]:
    with porc.session(owner="analyst") as s:
        yield s


def assert_no_raw(text: str) -> None:
    leaked = [v for v in RAW if v in text]
    assert not leaked, f"raw PII leaked: {leaked}"


def outbox(orc: Orchestrator) -> list[dict[str, object]]:
    pool = orc.bridge.upstreams  # type: ignore[union-attr]
    return pool.submit(pool.call("mailer", "list_outbox", {}, 5)).result()  # type: ignore[no-any-return]


def test_data_moves_between_tools_while_the_sandbox_sees_only_tokens(
    porc: Orchestrator, ps: Session
) -> None:
    r = ps.run("""
import json
from servers.crm import list_customers, get_customer
from servers.mailer import send_email
seen = []
for c in list_customers(segment="enterprise"):
    full = get_customer(customer_id=c["id"])
    send_email(to=full["email"], subject="Your renewal", body=f"Hi {full['name']}, call us back at {full['phone']}?")
    seen.append({"email": full["email"], "phone": full["phone"]})
print(json.dumps(seen))
open("seen.json", "w").write(json.dumps(seen));  # ";": not shown as a cell value
""")
    assert r.exit_code == 0, r.stderr
    seen = json.loads(r.stdout)
    assert [s["email"] for s in seen] == ["[EMAIL_1]", "[EMAIL_2]"]
    assert all(s["phone"].startswith("[PHONE_") for s in seen)
    assert_no_raw(r.stdout + r.stderr)
    # What the code itself held: the file it wrote, read raw from the host side.
    assert_no_raw(ps.download("seen.json").decode())
    # The upstream received the real values.
    sent = outbox(porc)[-2:]
    assert [m["to"] for m in sent] == ["jonas.weber@beispiel.de", "chloe.martin@exemple.fr"]
    assert "+49 30 901820" in str(sent[0]["body"])


def test_tokens_are_stable_within_a_session_so_code_can_join_on_them(ps: Session) -> None:
    r = ps.run("""
from servers.crm import get_customer, search_customers
a = get_customer(customer_id="C-1001")["email"]
b = search_customers(query="Gonzalez")[0]["email"]
print(a, a == b)
""")
    assert r.stdout == "[EMAIL_1] True\n"


def test_pii_the_code_got_by_other_means_is_tokenized_in_its_output(ps: Session) -> None:
    ps.upload("contacts.csv", b"name,email\nMaria,maria.gonzalez@example.com\n")
    r = ps.run(
        "import sys\nrow = open('contacts.csv').read().splitlines()[1]\nprint(row)\nprint('err', row, file=sys.stderr)"
    )
    assert r.stdout.startswith("Maria,[EMAIL_") and "[EMAIL_" in r.stderr
    assert_no_raw(r.stdout + r.stderr)


def test_file_previews_are_tokenized(ps: Session) -> None:
    ps.run(
        "open('report.txt', 'w').write('Contact: maria.gonzalez@example.com, +1 415 555 0132\\n')"
    )
    preview = ps.read_text("report.txt")
    assert preview.startswith("Contact: [EMAIL_") and "[PHONE_" in preview
    assert_no_raw(preview)


def test_tool_error_messages_are_tokenized_before_they_enter_the_sandbox(ps: Session) -> None:
    r = ps.run("""
from servers.crm import get_customer, search_customers
email = search_customers(query="Tanaka")[0]["email"]
try:
    get_customer(customer_id=email)   # the upstream gets the real address and names it in its error
except Exception as e:
    open("error.txt", "w").write(str(e))
""")
    assert r.exit_code == 0, r.stderr
    message = ps.download("error.txt").decode()
    assert "no customer [EMAIL_" in message
    assert_no_raw(message)


def test_the_audit_trail_holds_no_raw_values(porc: Orchestrator, ps: Session) -> None:
    ps.run(
        "from servers.crm import get_customer\nfrom servers.mailer import send_email\n"
        "c = get_customer(customer_id='C-1004')\nsend_email(to=c['email'], subject='x', body=c['phone'])"
    )
    assert_no_raw(porc.audit.path.read_text())  # type: ignore[union-attr]


def test_tokens_do_not_resolve_in_another_session(porc: Orchestrator, ps: Session) -> None:
    token = ps.run(
        "from servers.crm import get_customer\nprint(get_customer(customer_id='C-1005')['email'])"
    ).stdout.strip()
    assert token == "[EMAIL_1]"
    with porc.session(owner="other") as other:
        r = other.run(
            f"from servers.mailer import send_email\nprint(send_email(to='x@example.com', subject='s', body={token!r}))"
        )
        assert r.exit_code == 0, r.stderr
    assert (
        outbox(porc)[-1]["body"] == "[EMAIL_1]"
    )  # left literal: the other session has no such token


def test_pii_can_be_switched_off(make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(
        controller_id=make_settings().controller_id + "n", pii={"enabled": False}
    )
    with Orchestrator(settings) as orc, orc.session(owner="raw") as s:
        assert s.run("print('maria.gonzalez@example.com')").stdout == "maria.gonzalez@example.com\n"
