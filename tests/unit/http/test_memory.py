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
