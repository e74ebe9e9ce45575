"""Egress allowlist end to end: a real HTTP server on the host, the proxy, the sandbox (THREATS D3)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sandbox import Orchestrator


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the host"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()


@pytest.fixture(scope="module")
def eorc(make_settings, tmp_path_factory, web: int) -> Iterator[Orchestrator]:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("egress") / "profiles.json"
    path.write_text(
        json.dumps(
            {
                "profiles": {
                    "web": {
                        "network": "allowlist",
                        "egress": [f"localhost:{web}"],
                        "egress_private": True,
                    }
                }
            }
        )
    )
    settings = make_settings(controller_id=make_settings().controller_id + "n", profiles=path)
    with Orchestrator(settings) as orc:
        yield orc


PROBE = """
import json, socket, urllib.request
def get(url):
    try:
        return urllib.request.urlopen(url, timeout=5).read().decode()
    except Exception as e:
        return type(e).__name__ + ":" + str(getattr(e, "code", ""))
out = {{"allowed": get("http://localhost:{port}/hello"), "other_port": get("http://localhost:{other}/"),
        "raw_ip": get("http://127.0.0.1:{port}/"), "other_host": get("http://example.com/")}}
s = socket.socket()
s.settimeout(2)
try:
    s.connect(("127.0.0.1", {port}))
    out["direct"] = "connected"
except OSError:
    out["direct"] = "refused"
try:
    socket.getaddrinfo("example.com", 80)
    out["dns"] = "resolved"
except socket.gaierror:
    out["dns"] = "failed"
print(json.dumps(out))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_only_the_allowlisted_host_answers_and_everything_else_is_refused_and_recorded(
    eorc: Orchestrator, web: int
) -> None:
    with eorc.session(owner="web", profile="web") as s:
        r = s.run(PROBE.format(port=web, other=free_port()))
        assert r.exit_code == 0, r.stderr
        got = json.loads(r.stdout)
    assert got == {
        "allowed": "hello from the host",
        "other_port": "HTTPError:403",
        "raw_ip": "HTTPError:403",
        "other_host": "HTTPError:403",
        "direct": "refused",
        "dns": "failed",
    }
    eorc.flush_audit()  # records are written off the event loop
    events = [e for e in eorc.audit.read() if e["event"] in ("egress", "egress_denied")]
    assert any(
        e["event"] == "egress" and e["host"] == "localhost" and e["port"] == web for e in events
    )
    reasons = {e.get("reason") for e in events if e["event"] == "egress_denied"}
    assert "not_allowlisted" in reasons


def test_profiles_without_an_allowlist_have_no_way_out(eorc: Orchestrator, web: int) -> None:
    with eorc.session(owner="web") as s:
        r = s.run(
            f"import os, urllib.request\nprint(os.environ.get('HTTP_PROXY'))\n"
            f"try:\n    urllib.request.urlopen('http://localhost:{web}/', timeout=3)\n    print('reached')\n"
            f"except Exception as e:\n    print('refused')"
        )
        assert r.stdout == "None\nrefused\n"
