"""The tool bridge end to end: real MCP servers (stdio and streamable HTTP), real containers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from sandbox import Orchestrator, Session
from sandbox.backends.base import LABEL_MANAGED, LABEL_SESSION
from sandbox.models import ToolLimits

ROOT = Path(__file__).parents[2]
# crm's addresses may go to the mailer's recipient, its names into a mail's body (without a
# rule crm's values go back only to crm: tests/integration/test_pii_policy.py).
CRM_TO_MAILER = {
    "restore_rules": [
        {"entities": ["EMAIL"], "from": "crm.*", "to": "mailer.send_email", "args": ["to"]},
        {"entities": ["PERSON"], "from": "crm.*", "to": "mailer.send_email", "args": ["body"]},
    ]
}
CRM = str(ROOT / "examples" / "mcp_servers" / "crm.py")
MAILER = str(ROOT / "examples" / "mcp_servers" / "mailer.py")
FAULTY = str(ROOT / "tests" / "servers" / "faulty.py")


def trail(orc: Orchestrator) -> list[dict[str, object]]:
    """The audit trail, once the bridge's queued records are on it."""
    orc.flush_audit()
    return orc.audit.read()


def stdio(path: str) -> dict[str, object]:
    return {"command": sys.executable, "args": [path]}


@pytest.fixture(scope="module")
def borc(make_settings) -> Iterator[Orchestrator]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        controller_id=make_settings().controller_id + "b",
        pii=CRM_TO_MAILER,
        tool_limits=ToolLimits(
            call_timeout_s=3, max_result_bytes=64 * 1024, burst=40, calls_per_second=20
        ),
    )
    config = {"mcpServers": {"crm": stdio(CRM), "mailer": stdio(MAILER), "faulty": stdio(FAULTY)}}
    with Orchestrator(settings, mcp_config=config) as orc:
        yield orc


@pytest.fixture
def bs(borc: Orchestrator) -> Iterator[Session]:
    with borc.session(owner="agent") as s:
        yield s


def ok(session: Session, code: str) -> str:
    r = session.run(code)
    assert r.exit_code == 0, r.stderr
    return r.stdout


def test_a_script_moves_data_between_two_servers_in_one_run(
    borc: Orchestrator, bs: Session
) -> None:
    out = ok(
        bs,
        """
from servers.crm import get_customer, search_customers
from servers.mailer import send_email
hits = search_customers(query="berlin")
c = get_customer(customer_id=hits[0]["id"])
r = send_email(to=c["email"], subject="Renewal", body=f"Hello {c['name']}")
print(r["status"], c["id"])
""",
    )
    assert out == "queued C-1002\n"
    outbox = borc.bridge.upstreams.submit(
        borc.bridge.upstreams.call("mailer", "list_outbox", {}, 5, owner="agent")
    ).result()  # type: ignore[union-attr]
    assert outbox[-1]["to"] == "jonas.weber@beispiel.de"


def test_generated_modules_are_browsable_importable_and_typed(bs: Session) -> None:
    got = json.loads(
        ok(
            bs,
            """
import inspect, json, os
from servers.crm import get_customer, search_customers
print(json.dumps({
    "files": sorted(os.listdir('/servers/crm')),
    "sig": str(inspect.signature(search_customers)),
    "doc": get_customer.__doc__.splitlines()[0],
    "src": 'def get_customer(customer_id: str)' in open('/servers/crm/get_customer.py').read(),
    "writable": os.access('/servers/crm', os.W_OK),
}))
""",
        )
    )
    assert {"get_customer.py", "search_customers.py", "__init__.py"} <= set(got["files"])
    assert got["sig"] == "(query: 'str', limit: 'int | None' = None) -> 'Any'"
    assert got["doc"] == "Full record of one customer, with email and phone."
    assert got["src"] is True and got["writable"] is False


def test_tool_search_is_the_same_on_the_host_and_in_the_sandbox(
    borc: Orchestrator, bs: Session
) -> None:
    host = borc.search_tools("send email", detail="summary")
    inside = json.loads(
        ok(bs, "import json, servers; print(json.dumps(servers.search_tools('send email')))")
    )
    assert host == inside and host[0]["name"] == "mailer.send_email"
    assert borc.search_tools("send", "schema")[0]["input_schema"]["required"] == [
        "to",
        "subject",
        "body",
    ]


def test_hostile_tool_names_stay_inside_the_api_folder_and_still_work(
    borc: Orchestrator, bs: Session
) -> None:
    api = borc.bridge.servers_dir  # type: ignore[union-attr]
    ours = {"audit-keys.json", "keys.json"}  # the controller's own files, not generated code
    generated = [
        p
        for p in borc.settings.data_dir.rglob("*")
        if p.suffix in (".py", ".json") and p.name not in ours
    ]
    assert generated and all(api in p.parents for p in generated), generated
    assert not (api.parent.parent / "escape.py").exists()
    out = ok(
        bs,
        """
import os
from servers.faulty import escape, x_import_os, class_, unicode_tl, init
print(escape(), x_import_os(), class_(), unicode_tl(), init(), os.path.exists('/tmp/pwned'))
""",
    )
    assert out == "traversal statement keyword unicode dunder False\n"


def test_upstream_errors_arrive_as_exceptions_and_the_run_goes_on(bs: Session) -> None:
    out = ok(
        bs,
        """
from sandbox_tools import UpstreamError, ToolNotFoundError, call_tool
from servers.faulty import fail
from servers.crm import get_customer
for f in (fail, lambda: get_customer(customer_id="nope"), lambda: call_tool("crm", "no_such_tool", {})):
    try:
        f()
    except (UpstreamError, ToolNotFoundError) as e:
        print(type(e).__name__, e.code)
print("still running")
""",
    )
    assert (
        out
        == "UpstreamError upstream_error\nUpstreamError upstream_error\nToolNotFoundError not_found\nstill running\n"
    )


def test_a_crashing_upstream_is_reported_and_restarted(bs: Session) -> None:
    out = ok(
        bs,
        """
from sandbox_tools import ToolError
from servers.faulty import crash, echo
try:
    crash()
except ToolError as e:
    print("crash:", e.code)
print(echo(text="back"))
""",
    )
    assert out == "crash: unavailable\nback\n"


def test_a_hanging_upstream_times_out_and_is_restarted(bs: Session) -> None:
    start = time.monotonic()
    out = ok(
        bs,
        """
from sandbox_tools import ToolTimeoutError
from servers.faulty import hang, echo
try:
    hang(seconds=60)
except ToolTimeoutError as e:
    print("hang:", e.code, isinstance(e, TimeoutError))
print(echo(text="alive"))
""",
    )
    assert out == "hang: timeout True\nalive\n"
    assert time.monotonic() - start < 20


def test_a_forged_token_is_refused_and_audited(borc: Orchestrator, bs: Session) -> None:
    out = ok(
        bs,
        """
import sandbox_tools
from servers.faulty import noop
sandbox_tools._state["token"] = sandbox_tools._state["token"][:-1] + ("A" if sandbox_tools._state["token"][-1] != "A" else "B")
try:
    noop(); print("accepted")
except sandbox_tools.ToolAuthError as e:
    print("refused", e.code)
sandbox_tools._state["token"] = ""
try:
    noop(); print("accepted")
except PermissionError:
    print("refused empty")
""",
    )
    assert out == "refused unauthorized\nrefused empty\n"
    reasons = [
        e["reason"] for e in trail(borc) if e["event"] == "token_refused" and e["session"] == bs.id
    ]
    assert reasons[-2:] == ["forged", "missing"]


def test_a_token_replayed_after_its_run_is_refused(borc: Orchestrator, bs: Session) -> None:
    old = ok(bs, "import sandbox_tools; print(sandbox_tools._state['token'])").strip()
    assert len(old) >= 43  # 256 bits, base64url
    out = ok(
        bs,
        f"""
import sandbox_tools
from servers.faulty import noop
sandbox_tools._state["token"] = {old!r}
try:
    noop(); print("accepted")
except sandbox_tools.ToolAuthError:
    print("refused")
""",
    )
    assert out == "refused\n"
    last = [e for e in trail(borc) if e["event"] == "token_refused"][-1]
    assert last["reason"] == "replayed" and old not in json.dumps(trail(borc))


def test_a_token_from_another_session_is_refused_even_while_its_run_is_live(
    borc: Orchestrator,
) -> None:
    with borc.session(owner="a") as a, borc.session(owner="b") as b:
        a.upload("go", b"")
        result: dict[str, object] = {}
        t = threading.Thread(
            target=lambda: result.update(
                r=a.run(
                    "import sandbox_tools, time, os\n"
                    "open('token', 'w').write(sandbox_tools._state['token'])\n"
                    "while os.path.exists('go'): time.sleep(0.05)\n",
                    timeout=30,
                )
            )
        )
        t.start()
        for _ in range(200):
            if any(e.path == "token" for e in a.list_files()):
                break
            time.sleep(0.05)
        stolen = a.download("token").decode()
        out = ok(
            b,
            f"""
import sandbox_tools
from servers.faulty import noop
sandbox_tools._state["token"] = {stolen!r}
try:
    noop(); print("accepted")
except sandbox_tools.ToolAuthError:
    print("refused")
""",
        )
        a.delete_file("go")
        t.join(30)
    assert out == "refused\n"
    last = [e for e in trail(borc) if e["event"] == "token_refused"][-1]
    assert last["reason"] == "wrong_run" and last["session"] == b.id


def test_a_warm_container_holds_no_token(borc: Orchestrator, bs: Session, backend) -> None:  # type: ignore[no-untyped-def]
    assert bs.ready()
    assert borc.bridge.tokens.live(bs.id) == 0  # type: ignore[union-attr]
    (c,) = backend.list_managed({LABEL_MANAGED: "1", LABEL_SESSION: bs.id})
    info = docker.APIClient().inspect_container(c.ref.id)
    assert not [e for e in info["Config"]["Env"] if "TOKEN" in e.upper()]
    assert not [m for m in info["Mounts"] if "token" in m["Source"].lower()]


def test_tools_outside_the_session_allowlist_are_forbidden(borc: Orchestrator) -> None:
    with borc.session(owner="limited", tools=["crm.get_customer", "crm.search_*"]) as s:
        out = ok(
            s,
            """
from sandbox_tools import ToolForbiddenError
from servers.crm import get_customer
from servers.mailer import send_email
print(get_customer(customer_id="C-1001")["name"])
try:
    send_email(to="x@example.com", subject="s", body="b")
except ToolForbiddenError as e:
    print("forbidden", e.code)
""",
        )
        # The customer's name comes back from the crm as a token, like all PII in a result.
        assert out == "[PERSON_1]\nforbidden forbidden\n"
        assert {t["name"] for t in s.search_tools("")} == {
            "crm.get_customer",
            "crm.search_customers",
        }


def test_oversized_arguments_and_results_are_refused(bs: Session) -> None:
    out = ok(
        bs,
        """
from sandbox_tools import ToolInputError
from servers.faulty import echo, big
for f in (lambda: echo(text="x" * 300_000), lambda: big(n=200_000)):
    try:
        f(); print("accepted")
    except ToolInputError as e:
        print("refused", e.code)
print(len(big(n=1000)))
""",
    )
    assert out == "refused too_large\nrefused too_large\n1000\n"


def test_a_raw_oversized_frame_closes_the_channel_without_hanging_the_run(bs: Session) -> None:
    start = time.monotonic()
    r = bs.run(
        "import sandbox_tools\nsandbox_tools._state['ctl'].sendall(b'CALL 999999999\\n')\nimport time; time.sleep(1)\nprint('after')",
        timeout=20,
    )
    assert not r.timed_out and r.stdout == "after\n"
    assert time.monotonic() - start < 15


def test_a_call_flood_is_rate_limited(bs: Session) -> None:
    out = ok(
        bs,
        """
from sandbox_tools import ToolRateLimitError
from servers.faulty import noop
done = limited = 0
for _ in range(200):
    try:
        noop(); done += 1
    except ToolRateLimitError:
        limited += 1
print(done < 200, limited > 0)
""",
    )
    assert out == "True True\n"


def test_every_call_is_audited_without_argument_values(borc: Orchestrator, bs: Session) -> None:
    ok(bs, "from servers.faulty import echo; echo(text='secret-arg-4711')")
    events = [e for e in trail(borc) if e["event"] == "tool_call" and e["session"] == bs.id]
    assert events and events[-1]["tool"] == "echo" and events[-1]["outcome"] == "ok"
    assert {"owner", "exec_id", "duration_ms", "server"} <= set(events[-1])
    assert "secret-arg-4711" not in borc.audit.path.read_text()  # type: ignore[union-attr]


def test_without_mcp_servers_a_call_is_a_clear_error(session: Session) -> None:
    out = ok(
        session,
        """
from sandbox_tools import call_tool, UpstreamError
try:
    call_tool("crm", "get_customer", {})
except UpstreamError as e:
    print(e.code, e)
""",
    )
    assert out.startswith("unavailable no MCP servers are configured")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def http_servers() -> Iterator[dict[str, object]]:
    ports = {"crm": free_port(), "mailer": free_port()}
    procs = [
        subprocess.Popen(
            [sys.executable, path, "--http", str(ports[name])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, path in (("crm", CRM), ("mailer", MAILER))
    ]
    try:
        for port in ports.values():
            for _ in range(100):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
        yield {
            "mcpServers": {
                n: {"url": f"http://127.0.0.1:{p}/mcp", "headers": {"X-Test": "1"}}
                for n, p in ports.items()
            }
        }
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def test_the_same_script_works_over_streamable_http(make_settings, http_servers) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(controller_id=make_settings().controller_id + "h", pii=CRM_TO_MAILER)
    with Orchestrator(settings, mcp_config=http_servers) as orc, orc.session(owner="http") as s:
        assert orc.bridge.upstreams.status() == {"crm": "ready", "mailer": "ready"}  # type: ignore[union-attr]
        out = ok(
            s,
            """
from servers.crm import get_customer
from servers.mailer import send_email
c = get_customer(customer_id="C-1003")
print(send_email(to=c["email"], subject="Hi", body="Hello")["status"])
""",
        )
        assert out == "queued\n"


def test_an_upstream_secret_reaches_the_server_and_nothing_else(make_settings, backend) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from sandbox.secrets import SecretStore, master_key

    secret = "s3cr3t-upstream-token-9f8e7d6c5b4a"
    settings = make_settings(controller_id=make_settings().controller_id + "x")
    SecretStore(settings.data_dir / "secrets.json", master_key(None, settings.data_dir)).set(
        "faulty_token", secret
    )
    config = {
        "mcpServers": {
            "faulty": {
                "command": sys.executable,
                "args": [FAULTY],
                "env": {"API_TOKEN": "${secret:faulty_token}"},
            }
        }
    }
    with Orchestrator(settings, mcp_config=config) as orc, orc.session(owner="s") as s:
        r = s.run(
            "from servers.faulty import token_hash\nimport os\nprint(token_hash())\nprint(dict(os.environ))"
        )
        assert r.stdout.splitlines()[0] == hashlib.sha256(secret.encode()).hexdigest()
        assert s.ready()
        s.settle()  # the run's own container is gone: only the waiting one is left
        (c,) = backend.list_managed({LABEL_MANAGED: "1", LABEL_SESSION: s.id})
        inspected = json.dumps(docker.APIClient().inspect_container(c.ref.id))
        seen = [
            r.stdout,
            r.stderr,
            inspected,
            orc.audit.path.read_text(),  # type: ignore[union-attr]
            *(p.read_text() for p in orc.bridge.servers_dir.rglob("*") if p.is_file()),
        ]  # type: ignore[union-attr]
        assert not [text for text in seen if secret in text]
