"""The gVisor lane (THREATS B24): the same hardening and limits under `runsc`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from sandbox import Limits, Orchestrator, Session
from tests.security.conftest import probe
from tests.security.test_posture import DENIED_SYSCALLS, SYSCALL


@pytest.fixture(scope="module")
def gvisor(make_settings, backend) -> Iterator[Orchestrator]:  # type: ignore[no-untyped-def]
    if "runsc" not in (backend.info().get("Runtimes") or {}):
        if os.environ.get("CI") == "true":
            pytest.fail(
                "CI=true and the engine has no runsc runtime (scripts/setup.sh registers it)"
            )
        pytest.skip("no runsc runtime registered with the engine")
    settings = make_settings(controller_id=make_settings().controller_id + "r", runtime="runsc")
    with Orchestrator(settings) as orc:
        yield orc


@pytest.fixture
def gs(gvisor: Orchestrator) -> Iterator[Session]:
    with gvisor.session(owner="gvisor", limits=Limits(memory_mb=128, timeout_s=20)) as s:
        yield s


def test_code_runs_inside_gvisor_with_the_same_posture(gs: Session) -> None:
    got = probe(
        gs,
        """
import json, os, socket
status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines() if ':' in l)
print(json.dumps({"kernel": open('/proc/version').read(), "uid": os.getuid(), "cap": status["CapEff"].strip(),
                  "ifaces": [n for _, n in socket.if_nameindex()], "ro": os.access('/etc', os.W_OK)}))
""",
    )
    assert "gVisor" in got["kernel"] or "4.4.0" in got["kernel"]  # gVisor reports its own kernel
    assert got["uid"] == 1000 and int(got["cap"], 16) == 0 and got["ro"] is False
    assert got["ifaces"] == ["lo"]


def test_dangerous_syscalls_stay_refused_under_gvisor(gs: Session) -> None:
    calls = ",".join(f"{name!r}: sc{args!r}" for name, args in DENIED_SYSCALLS.items())
    got = probe(gs, SYSCALL + f"print(json.dumps({{{calls}}}))")
    # gVisor answers some of these itself (ENODEV, EINVAL...); what matters is that none succeeds.
    assert {name: r for name, r in got.items() if r == "OK"} == {}


def test_limits_hold_under_gvisor(gs: Session) -> None:
    assert gs.run("b = bytearray(300 << 20)").oom_killed
    r = gs.run("while True: pass", timeout=2)
    assert r.timed_out
    net = gs.run(
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 443), timeout=2)\nexcept OSError as e:\n    print(type(e).__name__)"
    )
    assert net.stdout == "OSError\n" or "Error" in net.stdout
    assert gs.run("print('still fine')").stdout == "still fine\n"


def test_workspace_and_tool_channel_work_under_gvisor(gs: Session) -> None:
    gs.upload("in.json", json.dumps({"a": 1}).encode())
    r = gs.run(
        "import json; d = json.load(open('in.json')); open('out.txt', 'w').write(str(d['a'] + 1))"
    )
    assert r.exit_code == 0 and gs.download("out.txt") == b"2"
