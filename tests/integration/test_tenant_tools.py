"""Tools per tenant, end to end: the real mailer over stdio, the real bridge, real containers.

Owner B must not read owner A's queued mail through the `mailer` server (THREATS M4): each
owner's calls reach a mailer process of their own, unless the deployment marks a server
shared. An owner's own server is in that owner's /servers only, and refused to anyone else.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Orchestrator, Session

ROOT = Path(__file__).parents[2]
MAILER = str(ROOT / "examples" / "mcp_servers" / "mailer.py")
TENANT = str(ROOT / "tests" / "servers" / "tenant.py")


def stdio(path: str, **extra: object) -> dict[str, object]:
    return {"command": sys.executable, "args": [path], **extra}


@pytest.fixture(scope="module")
def torc(make_settings) -> Iterator[Orchestrator]:  # type: ignore[no-untyped-def]
    settings = make_settings(controller_id=make_settings().controller_id + "tt")
    config = {
        "mcpServers": {"mailer": stdio(MAILER), "bulletin": stdio(MAILER, shared=True)},
        "owners": {"alice": {"mcpServers": {"diary": stdio(TENANT)}}},
    }
    with Orchestrator(settings, mcp_config=config) as orc:
        yield orc


def ok(session: Session, code: str) -> str:
    r = session.run(code)
    assert r.exit_code == 0, r.stderr
    return r.stdout


SEND = """
from servers.{server} import send_email
print(send_email(to="partner@example.com", subject="{subject}", body="quarterly numbers")["status"])
"""
READ = """
from servers.{server} import list_outbox
print(sorted(m["subject"] for m in list_outbox()))
"""


def test_owner_b_cannot_read_owner_a_queued_mail(torc: Orchestrator) -> None:
    with torc.session(owner="alice") as a, torc.session(owner="bob") as b:
        assert ok(a, SEND.format(server="mailer", subject="alice-acquisition-plan")) == "queued\n"
        assert ok(b, READ.format(server="mailer")) == "[]\n"
        assert ok(b, SEND.format(server="mailer", subject="bob-notes")) == "queued\n"
        assert ok(a, READ.format(server="mailer")) == "['alice-acquisition-plan']\n"
        assert ok(b, READ.format(server="mailer")) == "['bob-notes']\n"
    running = torc.bridge.upstreams.connections()  # type: ignore[union-attr]
    assert {("mailer", "alice"), ("mailer", "bob")} <= set(running)


def test_a_server_marked_shared_is_one_process_every_owner_reads(torc: Orchestrator) -> None:
    # Why per owner is the default: a shared mailer shows everyone's mail to everyone.
    with torc.session(owner="carol") as c, torc.session(owner="dave") as d:
        ok(c, SEND.format(server="bulletin", subject="carol-public-note"))
        assert "carol-public-note" in ok(d, READ.format(server="bulletin"))
    running = torc.bridge.upstreams.connections()  # type: ignore[union-attr]
    assert [k for k in running if k[0] == "bulletin"] == [("bulletin", None)]


PROBE = """
import os
print(sorted(os.listdir("/servers")))
from sandbox_tools import call_tool, ToolNotFoundError
try:
    import servers.diary
    print("imported", call_tool("diary", "remember", {"text": "mine"}))
except ModuleNotFoundError:
    print("no module")
try:
    call_tool("diary", "recall", {})
except ToolNotFoundError as e:
    print("refused", e.code)
"""


def test_an_owners_own_server_is_invisible_to_everyone_else(torc: Orchestrator) -> None:
    with torc.session(owner="alice") as a, torc.session(owner="bob") as b:
        mine, theirs = ok(a, PROBE).splitlines(), ok(b, PROBE).splitlines()
        assert "'diary'" in mine[0] and mine[1] == "imported 1"
        assert "'diary'" not in theirs[0]
        assert theirs[1:] == ["no module", "refused not_found"]
        assert "diary" not in {t["name"].split(".")[0] for t in b.search_tools("", "name", 200)}
        assert "diary.recall" in {t["name"] for t in a.search_tools("", "name", 200)}
