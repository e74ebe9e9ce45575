"""Hostile code in one box against the controller's tool bridge (THREATS L2, L6, F10): floods
are cut off per run, refusals are aggregated, bad arguments never reach an upstream, and
restarts one tenant causes are on its record and rate-limited. Local-process backend, a real
stdio MCP server."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from sandbox import Orchestrator
from tests.unit.conftest import MakeOrc

FAULTY = str(Path(__file__).parents[2] / "servers" / "faulty.py")
MCP = {"mcpServers": {"faulty": {"command": sys.executable, "args": [FAULTY]}}}


@pytest.fixture
def orc(make_orc: MakeOrc, tmp_path: Path) -> Orchestrator:
    config = tmp_path / "mcp.json"
    config.write_text(__import__("json").dumps(MCP))
    return make_orc(
        mcp_config=config,
        pii={"enabled": False},
        tool_limits={
            "call_timeout_s": 1,
            "max_refused": 50,
            "burst": 1000,
            "calls_per_second": 1000,
        },
    )


def total(orc: Orchestrator, event: str, **match: object) -> int:
    assert orc.bridge is not None
    orc.bridge.records.flush()
    return sum(
        int(r.get("count", 1))
        for r in orc.audit.read()
        if r["event"] == event and all(r.get(k) == v for k, v in match.items())
    )


BAD_TOKEN_FLOOD = """
import sandbox_tools
sandbox_tools._state["token"] = "forged"
n = 0
while True:
    try:
        sandbox_tools.call_tool("faulty", "noop")
    except sandbox_tools.ToolError:
        n += 1
"""


def test_a_bad_token_flood_is_cut_off_and_aggregated(orc: Orchestrator) -> None:
    with orc.session(owner="mallory") as bad, orc.session(owner="victim") as good:
        done: list[str] = []

        def victim() -> None:
            for _ in range(20):
                out = good.run("from servers.faulty import noop\nprint(noop())", timeout=20)
                done.append(out.stdout)

        t = threading.Thread(target=victim)
        t.start()
        r = bad.run(BAD_TOKEN_FLOOD, timeout=20)
        t.join(60)
    assert r.error == "too_many_refused_calls" and r.exit_code == 137
    assert done == ["ok\n"] * 20  # the other tenant's calls were all served
    # Every refusal is counted, in a handful of records rather than one per packet.
    assert total(orc, "token_refused", owner="mallory") >= 50
    records = [r for r in orc.audit.read() if r["event"] == "token_refused"]
    assert len(records) < 10


JUNK_FLOOD = """
import sandbox_tools
ctl = sandbox_tools._state["ctl"]
junk = b"CALL 262144\\n" + b"\\xff" * 262144
while True:
    ctl.sendall(junk)
"""


def test_a_junk_frame_flood_is_cut_off(orc: Orchestrator) -> None:
    with orc.session(owner="mallory") as s:
        r = s.run(JUNK_FLOOD, timeout=20)
    assert r.error in ("control_flood", "too_many_refused_calls") and not r.timed_out


IN_FLIGHT = """
# Past the runtime's one-call-at-a-time lock: frames written straight on the control socket.
import json, sandbox_tools
ctl, token = sandbox_tools._state["ctl"], sandbox_tools._state["token"]
frames = b""
for i in range(40):
    body = json.dumps({"id": i, "token": token, "server": "faulty", "tool": "noop"}).encode()
    frames += b"CALL %d\\n" % len(body) + body
ctl.sendall(frames)
replies, f = [], ctl.makefile("rb")
for _ in range(40):
    size = int(f.readline().split()[1])
    reply = json.loads(f.read(size))
    replies.append("ok" if reply.get("ok") else reply["error"]["code"])
print(sorted(set(replies)), replies.count("rate_limited"))
"""


def test_calls_in_flight_per_run_are_bounded(orc: Orchestrator) -> None:
    with orc.session(owner="mallory") as s:
        r = s.run(IN_FLIGHT, timeout=30)
    kinds, limited = r.stdout.split("] ")
    assert kinds == "['ok', 'rate_limited'", r.stdout + r.stderr
    assert 0 < int(limited) <= 40 - 1 and total(orc, "tool_refused", reason="too_many_in_flight")


DEEP = """
from sandbox_tools import call_tool, ToolInputError
from servers.faulty import echo, seen
deep = "x"
for _ in range(250):
    deep = [deep]
for args in ({"text": deep}, {"text": 7}, {"nope": "x"}):
    try:
        call_tool("faulty", "echo", args)
    except ToolInputError as e:
        print("refused", e.code)
print("seen", seen())
"""


def test_bad_arguments_never_reach_the_upstream(orc: Orchestrator) -> None:
    with orc.session(owner="mallory") as s:
        r = s.run(DEEP, timeout=30)
    assert r.stdout == "refused bad_request\n" * 3 + "seen 0\n", r.stderr


HANG = """
from sandbox_tools import call_tool, ToolError
for _ in range(4):
    try:
        call_tool("faulty", "hang", {"seconds": 30})
    except ToolError as e:
        print(e.code)
"""


def test_upstream_restarts_are_on_the_tenants_record_and_limited(orc: Orchestrator) -> None:
    with orc.session(owner="mallory") as bad, orc.session(owner="victim") as good:
        r = bad.run(HANG, timeout=30)
        assert r.stdout.split() == ["timeout", "timeout", "timeout", "unavailable"], r.stderr
        ok = good.run("from servers.faulty import noop\nprint(noop())", timeout=30)
    assert ok.stdout == "ok\n"  # another owner still reaches the server
    assert total(orc, "upstream_restart", owner="mallory", server="faulty") == 3


PIPELINE_AND_LEAVE = """
import json, sandbox_tools
ctl, token = sandbox_tools._state["ctl"], sandbox_tools._state["token"]
for i in range(3):
    body = json.dumps({"id": i, "token": token, "server": "faulty", "tool": "hang", "args": {"seconds": 5}}).encode()
    ctl.sendall(b"CALL %d\\n" % len(body) + body)
print("left")
"""


def test_calls_still_waiting_when_their_run_ends_are_cancelled(orc: Orchestrator) -> None:
    with orc.session(owner="mallory") as s:
        r = s.run(PIPELINE_AND_LEAVE, timeout=20)
    assert r.stdout == "left\n"
    orc.flush_audit()
    calls = [
        rec
        for rec in orc.audit.read()
        if rec["event"] == "tool_call" and rec.get("exec_id") == r.exec_id
    ]
    assert [c["outcome"] for c in calls] == ["cancelled"] * 3


APPROVAL_FLOOD = """
import json, sandbox_tools
ctl, token = sandbox_tools._state["ctl"], sandbox_tools._state["token"]
for i in range(1, 25):  # raw frames, all at once: the runtime's own lock would queue them
    body = json.dumps({"id": i, "token": token, "server": "faulty", "tool": "noop"}).encode()
    ctl.sendall(b"CALL %d\\n" % len(body) + body)
codes = []
f = ctl.makefile("rb")
while len(codes) < 20:  # all but the four the broker holds answer at once
    size = int(f.readline().split()[1])
    codes.append(json.loads(f.read(size))["error"]["code"])
print(sorted(set(codes)), len(codes))
"""


def test_a_box_cannot_grow_the_pending_approvals_past_its_owners_bound(
    make_orc: MakeOrc, tmp_path: Path
) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(__import__("json").dumps(MCP))
    profiles = tmp_path / "profiles.json"
    profiles.write_text('{"profiles": {"reviewed": {"approval": ["faulty.*"]}}}')
    orc = make_orc(
        mcp_config=config,
        profiles=profiles,
        pii={"enabled": False},
        approvals={"max_pending_per_owner": 4, "max_pending": 8, "timeout_s": 60},
    )
    with orc.session(owner="mallory", profile="reviewed") as bad:
        r = bad.run(APPROVAL_FLOOD, timeout=20)
    assert r.stdout == "['rate_limited'] 20\n", r.stderr
    assert orc.approvals.pending("mallory") == []  # the run ended: its four withdrawn
    orc.flush_audit()
    decided = [r for r in orc.audit.read() if r["event"] == "approval_decided"]
    assert [r["outcome"] for r in decided] == ["withdrawn"] * 4
    # 16 may be in flight at once (the rest refused before the broker): of those only four wait.
    assert 12 <= total(orc, "approval_refused", owner="mallory") <= 20
