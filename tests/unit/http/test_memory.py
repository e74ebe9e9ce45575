"""The controller's memory has a ceiling under hostile inputs (THREATS L4): uploads stream to
disk, never held whole."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import httpx

from sandbox.keys import KeyStore
from tests.integration.test_http_api import Server
from tests.unit.conftest import MakeOrc

MiB = 1024 * 1024


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_parallel_large_uploads_do_not_grow_the_controller(make_orc: MakeOrc) -> None:
    orc = make_orc(limits={"max_file_mb": 64}, api={"max_body_bytes": 65 * MiB})
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    secret = keys.create("alice")[1]
    with Server(orc, keys) as server:
        h = {"Authorization": f"Bearer {secret}"}
        sid = httpx.post(f"{server.url}/v1/sessions", json={}, headers=h).json()["id"]
        peak, stop = [rss()], threading.Event()
        before = peak[0]

        def sample() -> None:
            while not stop.wait(0.005):
                peak.append(rss())

        def body() -> Iterator[bytes]:
            chunk = b"z" * MiB
            for _ in range(48):  # 48 MiB, produced as it is sent: the client holds 1 MiB
                yield chunk

        def upload(i: int) -> None:
            r = httpx.put(
                f"{server.url}/v1/sessions/{sid}/files/big{i}",
                content=body(),
                headers=h,
                timeout=120,
            )
            assert r.status_code == 204, r.text

        sampler = threading.Thread(target=sample)
        sampler.start()
        uploads = [threading.Thread(target=upload, args=(i,)) for i in range(6)]
        for t in uploads:
            t.start()
        for t in uploads:
            t.join(120)
        stop.set()
        sampler.join()
        sizes = {e.path: e.size for e in orc.get_session(sid).list_files()}
        assert all(sizes[f"big{i}"] == 48 * MiB for i in range(6))
        # 288 MiB went through; held whole it would have grown this process by that much.
        assert max(peak) - before < 64 * MiB, (max(peak) - before) / MiB


def test_an_upload_over_the_file_limit_leaves_no_partial_file(make_orc: MakeOrc) -> None:
    orc = make_orc(limits={"max_file_mb": 1})
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    secret = keys.create("alice")[1]
    with Server(orc, keys) as server:
        h = {"Authorization": f"Bearer {secret}"}
        sid = httpx.post(f"{server.url}/v1/sessions", json={}, headers=h).json()["id"]

        def body() -> Iterator[bytes]:
            for _ in range(4):
                yield b"z" * MiB

        r = httpx.put(f"{server.url}/v1/sessions/{sid}/files/x", content=body(), headers=h)
        assert r.status_code == 413 and r.json()["error"]["code"] == "quota_exceeded"
        assert orc.get_session(sid).list_files() == []


def test_json_bodies_have_their_own_small_limit_and_a_shared_budget(make_orc: MakeOrc) -> None:
    import socket

    orc = make_orc(
        api={
            "max_body_bytes": 8 * MiB,
            "max_json_bytes": 512 * 1024,
            "json_budget_bytes": 1024 * 1024,
            "body_timeout_s": 20,
        }
    )
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    secret = keys.create("alice")[1]
    with Server(orc, keys) as server:
        h = {"Authorization": f"Bearer {secret}"}
        sid = httpx.post(f"{server.url}/v1/sessions", json={}, headers=h).json()["id"]
        big_json = httpx.post(
            f"{server.url}/v1/sessions/{sid}/runs", json={"code": "#" * 600_000}, headers=h
        )
        assert big_json.status_code == 413 and big_json.json()["error"]["code"] == "body_too_large"
        upload = httpx.put(
            f"{server.url}/v1/sessions/{sid}/files/f", content=b"x" * 600_000, headers=h
        )
        assert upload.status_code == 204  # uploads stream to disk and keep the large limit
        # Three slow 450 KiB bodies: two fit the 1 MiB budget together, the third is told 503.
        held = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(
                f"POST /v1/sessions/{sid}/runs HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {460_000}\r\n\r\n".encode()
                + b'{"code": "'
                + b"#" * 450_000
            )
            held.append(s)
        for _ in range(200):  # bounded: until the server has read what they sent
            third = httpx.post(
                f"{server.url}/v1/sessions/{sid}/runs",
                content=b'{"code": "' + b"#" * 450_000 + b'"}',
                headers={**h, "Content-Type": "application/json"},
            )
            if third.status_code == 503:
                break
        assert third.status_code == 503, third.text
        assert third.json()["error"]["code"] == "busy"
        assert third.headers["retry-after"] == "1"
        for s in held:
            s.close()


def test_hostile_load_stays_under_the_memory_formula(make_orc: MakeOrc, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import sys
    from pathlib import Path

    from sandbox.capacity import memory_ceiling

    faulty = Path(__file__).parents[2] / "servers" / "faulty.py"
    config = tmp_path / "mcp.json"
    config.write_text(
        json.dumps({"mcpServers": {"f": {"command": sys.executable, "args": [str(faulty)]}}})
    )
    orc = make_orc(
        mcp_config=config,
        limits={"output_bytes": 256 * 1024, "max_file_mb": 32},
        api={
            "runs_total": 4,
            "runs_per_key": 4,
            "run_queue": 8,
            "max_connections": 32,
            "max_json_bytes": 1024 * 1024,
            "json_budget_bytes": 8 * MiB,
            "sessions_total": 32,
        },
        tool_limits={"max_in_flight": 4, "max_result_bytes": 256 * 1024, "max_refused": 500},
    )
    ceiling = memory_ceiling(orc.settings).total
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    secret = keys.create("mallory")[1]
    flood = "import sys\nfor _ in range(200):\n    sys.stdout.write('y' * 65536)\n"
    bad_calls = (
        "import sandbox_tools\nsandbox_tools._state['token'] = 'x'\n"
        "for _ in range(3000):\n    try: sandbox_tools.call_tool('f', 'noop')\n"
        "    except sandbox_tools.ToolError: pass\n"
    )
    with Server(orc, keys) as server:
        h = {"Authorization": f"Bearer {secret}"}
        sids = [
            httpx.post(f"{server.url}/v1/sessions", json={}, headers=h).json()["id"]
            for _ in range(4)
        ]
        before, peak, stop = rss(), [rss()], threading.Event()

        def sample() -> None:
            while not stop.wait(0.005):
                peak.append(rss())

        def attack(i: int) -> None:
            sid = sids[i % 4]
            for code in (flood, bad_calls):
                httpx.post(
                    f"{server.url}/v1/sessions/{sid}/runs",
                    json={"code": code},
                    headers=h,
                    timeout=120,
                )

        def upload(i: int) -> None:
            chunk = b"u" * MiB
            httpx.put(
                f"{server.url}/v1/sessions/{sids[0]}/files/u{i}",
                content=(chunk for _ in range(24)),
                headers=h,
                timeout=120,
            )

        sampler = threading.Thread(target=sample)
        sampler.start()
        workers = [threading.Thread(target=attack, args=(i,)) for i in range(8)]
        workers += [threading.Thread(target=upload, args=(i,)) for i in range(4)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(180)
        stop.set()
        sampler.join()
    growth = max(peak) - before
    print(f"growth {growth / MiB:.1f} MiB, ceiling {ceiling / MiB:.1f} MiB")
    assert growth < ceiling, (growth / MiB, ceiling / MiB)
