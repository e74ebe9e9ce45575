"""Time from a cancel to a free session, on each path that cancels a run (issue 12, item 2).

    python bench/bench_cancel.py [--n 10]

Each variant starts `print('started'); time.sleep(120)` in a session whose key has ONE run
slot, waits until the run has begun, cancels it, and measures from the cancel to:
  killed  the run's end on the audit trail (outcome cancelled: the container was killed),
  slot    the key's run slot free again (held until the killed container is removed),
  next    the same client's next `print(1)` answered in the same session.
Paths: the embedded CancelToken, an HTTP client dropping /runs, a client closing a
/runs/stream, and an MCP client cancelling execute_code over /mcp on the session-based
protocol (notifications/cancelled) and on 2026-07-28 (the response stream closed). Variants go
round-robin, so machine noise hits them alike. Needs a running engine and the sandbox image
(scripts/setup.sh); the controller runs in this process behind uvicorn on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from mcp import Client as McpClient

from sandbox import CancelToken, Orchestrator, Settings
from sandbox.bridge.upstream import _HttpTransport
from sandbox.client import Client
from sandbox.http_api import create_app
from sandbox.keys import KeyStore

LONG = "import time\nprint('started', flush=True)\ntime.sleep(120)"
Timings = dict[str, float]


class Watch:
    """Audit events as they are written, and the key's slots, timed from a cancel."""

    def __init__(self, orc: Orchestrator) -> None:
        self.orc = orc
        self.started = threading.Event()
        self.ended = threading.Event()
        self.end_at = 0.0
        self.outcome = ""
        orc.audit.subscribe(self._heard)

    def _heard(self, record: dict[str, Any]) -> None:
        if record.get("event") == "run_start":
            self.started.set()
        elif (
            record.get("event") == "run_end"
            and record.get("outcome") != "not_started"  # a dead warm container, retried cold
            and not self.ended.is_set()
        ):
            self.end_at, self.outcome = time.monotonic(), str(record.get("outcome"))
            self.ended.set()

    def reset(self) -> None:
        self.started.clear()
        self.ended.clear()

    def after_cancel(
        self, cancelled_at: float, key_id: str, next_run: Callable[[], str]
    ) -> Timings:
        if not self.ended.wait(60) or self.outcome != "cancelled":
            raise RuntimeError(f"the run did not end as cancelled ({self.outcome!r})")
        while self.orc.admission.slots.in_use(key_id):
            time.sleep(0.002)
        slot_at = time.monotonic()
        if next_run().strip() != "1":
            raise RuntimeError("the next run printed something else")
        done = time.monotonic()
        return {
            "killed": self.end_at - cancelled_at,
            "slot": slot_at - cancelled_at,
            "next": done - cancelled_at,
        }


def embedded(orc: Orchestrator, watch: Watch) -> Callable[[], Timings]:
    s = orc.session("bench-embedded")

    def once() -> Timings:
        token, seen = CancelToken(), threading.Event()
        worker = threading.Thread(
            target=lambda: s.run(LONG, on_output=lambda *_: seen.set(), cancel=token)
        )
        worker.start()
        seen.wait(60)
        at = time.monotonic()
        token.cancel()
        out = watch.after_cancel(at, s.principal.key_id, lambda: s.run("print(1)").stdout)
        worker.join(60)
        return out

    return once


def rest_drop(url: str, key: str, key_id: str, watch: Watch) -> Callable[[], Timings]:
    client = Client(url, key)
    sid = client.session().id
    host, port = url.removeprefix("http://").split(":")

    def once() -> Timings:
        body = json.dumps({"code": LONG}).encode()
        sock = socket.create_connection((host, int(port)))
        sock.sendall(
            f"POST /v1/sessions/{sid}/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        watch.started.wait(60)
        at = time.monotonic()
        sock.close()
        path = f"/v1/sessions/{sid}/runs"
        return watch.after_cancel(
            at,
            key_id,
            lambda: client.request("POST", path, json={"code": "print(1)"}).json()["stdout"],
        )

    return once


def sse_close(url: str, key: str, key_id: str, watch: Watch) -> Callable[[], Timings]:
    client = Client(url, key)
    s = client.session()

    def once() -> Timings:
        events = s.stream(LONG)
        next(events)
        at = time.monotonic()
        events.close()
        return watch.after_cancel(at, key_id, lambda: s.run("print(1)").stdout)

    return once


def mcp_cancel(url: str, key: str, key_id: str, watch: Watch, mode: str) -> Callable[[], Timings]:
    # The client's loop runs all the time, in a thread of its own: a cancel notification it
    # sends in the background must not wait for this thread to drive the loop again.
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def on_loop(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(180)

    headers = {"Authorization": f"Bearer {key}"}
    transport = _HttpTransport(f"{url}/mcp", httpx2.AsyncClient(headers=headers, timeout=120))
    client = McpClient(transport, mode=mode)  # type: ignore[arg-type]
    on_loop(client.__aenter__())
    session: dict[str, str] = {}
    if mode != "legacy":  # no MCP sessions: a named one keeps the workspace
        opened = on_loop(client.call_tool("open_session", {}))
        session["session"] = opened.structured_content["session"]

    async def call(code: str) -> Any:
        return await client.call_tool("execute_code", {"code": code, **session})

    async def started(code: str) -> asyncio.Task[Any]:
        return asyncio.ensure_future(call(code))

    def once() -> Timings:
        task = on_loop(started(LONG))
        watch.started.wait(60)
        at = time.monotonic()
        loop.call_soon_threadsafe(task.cancel)
        return watch.after_cancel(
            at, key_id, lambda: on_loop(call("print(1)")).structured_content["stdout"]
        )

    return once


def summary(samples: list[Timings]) -> dict[str, tuple[float, float]]:
    out = {}
    for k in ("killed", "slot", "next"):
        xs = sorted(1000 * s[k] for s in samples)
        out[k] = (statistics.median(xs), xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="sbx-bench-cancel-"))
    settings = Settings(
        data_dir=data,
        controller_id="benchcancel",
        api={"runs_per_key": 1, "run_queue_wait_s": 60, "rate_per_s": 1000, "rate_burst": 1000},
        output={"mcp_structured": True},
    )
    with Orchestrator(settings) as orc:
        keys = KeyStore(data / "keys.json")
        record, key = keys.create("bench")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(orchestrator=orc, keys=keys), port=port, log_level="error")
        )
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        watch = Watch(orc)
        variants = {
            "embedded CancelToken": embedded(orc, watch),
            "HTTP /runs, connection dropped": rest_drop(url, key, record.id, watch),
            "HTTP /runs/stream, stream closed": sse_close(url, key, record.id, watch),
            "MCP /mcp session-based, cancelled": mcp_cancel(url, key, record.id, watch, "legacy"),
            "MCP /mcp 2026-07-28, cancelled": mcp_cancel(url, key, record.id, watch, "auto"),
        }
        samples: dict[str, list[Timings]] = {k: [] for k in variants}
        for _ in range(args.n):
            for name, once in variants.items():
                time.sleep(0.3)  # think time: the session's next container warms
                watch.reset()
                samples[name].append(once())
        server.should_exit = True
    print(f"n={args.n} per variant; ms from the cancel, p50 / p95\n")
    print("| path | killed (run_end) | slot free | next print(1) answered |")
    print("|---|---:|---:|---:|")
    for name, got in samples.items():
        s = summary(got)
        cells = " | ".join(f"{s[k][0]:.0f} / {s[k][1]:.0f}" for k in ("killed", "slot", "next"))
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
