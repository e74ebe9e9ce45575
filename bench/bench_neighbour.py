"""A hostile neighbour: one tenant attacks while another runs a steady workload.

    python bench/bench_neighbour.py [--seconds 20] [--rounds 2]

`sandbox serve` runs as its own process (real Docker backend, a stdio MCP server). The victim
(one key) loops over a run of `print(1)` and a run that makes one tool call, over HTTP; the
attacker (another key) runs every flood we know of at once: forged-token call floods, junk
control frames, output floods, dropped SSE streams, deep tool arguments, large uploads in
parallel, and a churn of empty runs on four sessions. Quiet and attacked phases alternate in
the same process, so noise hits both. Reports the victim's p50/p99 per phase, its failures,
the attacker's run rates, and the controller's peak memory (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from serve import sandbox_serve

ROOT = Path(__file__).parents[1]
FAULTY = ROOT / "tests" / "servers" / "faulty.py"
MiB = 1024 * 1024

BAD_TOKENS = """
import sandbox_tools
sandbox_tools._state["token"] = "forged"
while True:
    try:
        sandbox_tools.call_tool("f", "noop")
    except sandbox_tools.ToolError:
        pass
"""
JUNK = """
import sandbox_tools
ctl = sandbox_tools._state["ctl"]
junk = b"CALL 262144\\n" + b"\\xff" * 262144
while True:
    ctl.sendall(junk)
"""
OUTPUT = "import sys\nwhile True:\n    sys.stdout.write('y' * 65536)\n"
DEEP = """
from sandbox_tools import call_tool, ToolError
deep = "x"
for _ in range(250):
    deep = [deep]
for _ in range(200):
    try:
        call_tool("f", "echo", {"text": deep})
    except ToolError:
        pass
"""
SLOW = "import time\nprint('start', flush=True)\ntime.sleep(5)"
VICTIM_RUN = "print(1)"
VICTIM_TOOL = "from servers.f import noop\nprint(noop())"


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class Tenant:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.h = url, {"Authorization": f"Bearer {key}"}
        self.http = httpx.Client(base_url=url, headers=self.h, timeout=120)

    def session(self) -> str:
        r = self.http.post("/v1/sessions", json={})
        r.raise_for_status()
        return str(r.json()["id"])

    def run(self, sid: str, code: str, timeout: float = 10) -> httpx.Response:
        return self.http.post(f"/v1/sessions/{sid}/runs", json={"code": code, "timeout": timeout})


def victim_loop(
    t: Tenant,
    sid: str,
    stop: threading.Event,
    lat: list[float],
    bad: list[str],
    think: float,
) -> None:
    while not stop.is_set():
        for code, want in ((VICTIM_RUN, "1\n"), (VICTIM_TOOL, "ok\n")):
            if think:
                stop.wait(think)  # an agent thinks between runs (its model answers)
            start = time.perf_counter()
            try:
                r = t.run(sid, code)
                ok = r.status_code == 200 and r.json()["stdout"] == want
            except httpx.HTTPError as exc:
                ok, r = False, None
                bad.append(type(exc).__name__)
            lat.append(time.perf_counter() - start)
            if not ok and r is not None:
                bad.append(f"{r.status_code} {r.text[:120]}")


ATTACKS = ("tokens", "junk", "output", "deep", "streams", "uploads", "churn")


ATTACK_RUNS: dict[str, list[float]] = {}


def attacker(
    t: Tenant, stop: threading.Event, only: tuple[str, ...] = ATTACKS
) -> list[threading.Thread]:
    sids = [t.session() for _ in range(4)]
    churn_sids = [t.session() for _ in range(4)] if "churn" in only else []

    def runs(sid: str, code: str) -> Callable[[], None]:
        took = ATTACK_RUNS.setdefault(code[:40], [])

        def go() -> None:
            while not stop.is_set():
                start = time.perf_counter()
                t.run(sid, code, timeout=8)
                took.append(time.perf_counter() - start)

        return go

    def dropped_streams() -> None:
        while not stop.is_set():
            with t.http.stream(
                "POST", f"/v1/sessions/{sids[3]}/runs/stream", json={"code": SLOW}
            ) as r:
                for _ in r.iter_lines():
                    break  # the first event, then hang up

    def uploads(i: int) -> Callable[[], None]:
        def body() -> Iterator[bytes]:
            for _ in range(60):
                yield b"u" * MiB

        def go() -> None:
            while not stop.is_set():
                t.http.put(f"/v1/sessions/{sids[3]}/files/u{i}", content=body())

        return go

    by_name: dict[str, list[Callable[[], None]]] = {
        "tokens": [runs(sids[0], BAD_TOKENS)],
        "junk": [runs(sids[1], JUNK)],
        "output": [runs(sids[2], OUTPUT)],
        "deep": [runs(sids[2], DEEP)],
        "streams": [dropped_streams],
        "uploads": [uploads(0), uploads(1), uploads(2)],
        "churn": [runs(sid, "pass") for sid in churn_sids],
    }
    jobs = [job for name in only for job in by_name[name]]
    threads = [threading.Thread(target=job, daemon=True) for job in jobs]
    for th in threads:
        th.start()
    return threads


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    ap.add_argument("--rounds", type=int, default=2, help="quiet/attacked pairs")
    ap.add_argument("--only", nargs="*", choices=ATTACKS, default=list(ATTACKS))
    ap.add_argument(
        "--victims",
        type=int,
        default=1,
        help="the victim's sessions, each its own agent (more runs for its p99)",
    )
    ap.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="victim's pause before each run (0: back to back, each run waits for its box)",
    )
    args = ap.parse_args()

    data = Path(tempfile.mkdtemp(prefix="sbx-neighbour-"))
    (data / "mcp.json").write_text(
        json.dumps({"mcpServers": {"f": {"command": sys.executable, "args": [str(FAULTY)]}}})
    )
    env = {
        **os.environ,
        "SANDBOX_DATA_DIR": str(data),
        "SANDBOX_CONTROLLER_ID": "neighbour" + secrets.token_hex(3),
        "SANDBOX_MCP_CONFIG": str(data / "mcp.json"),
        "SANDBOX_API__RATE_PER_S": "500",
        "SANDBOX_API__RATE_BURST": "1000",
    }
    keys = {}
    for owner in ("victim", "attacker"):
        out = subprocess.run(
            ["sandbox", "keys", "create", "--owner", owner],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        keys[owner] = out.stdout.strip()
    with sandbox_serve(env) as (url, server):
        victim, bad_tenant = Tenant(url, keys["victim"]), Tenant(url, keys["attacker"])
        vsids = [victim.session() for _ in range(args.victims)]
        for vsid in vsids:
            victim.run(vsid, VICTIM_TOOL)  # warm-up
        phases: dict[str, list[float]] = {"quiet": [], "attacked": []}
        failures: dict[str, list[str]] = {"quiet": [], "attacked": []}
        for _ in range(args.rounds):
            for phase in ("quiet", "attacked"):
                stop = threading.Event()
                attack = attacker(bad_tenant, stop, tuple(args.only)) if phase == "attacked" else []
                lat: list[float] = []
                vts = [
                    threading.Thread(
                        target=victim_loop,
                        args=(victim, vsid, stop, lat, failures[phase], args.think),
                    )
                    for vsid in vsids
                ]
                for vt in vts:
                    vt.start()
                time.sleep(args.seconds)
                stop.set()
                for vt in vts:
                    vt.join(120)
                for th in attack:
                    th.join(60)
                phases[phase] += lat
        peak = peak_rss(server.pid)

    print(
        f"# victim latency, one run per request, {args.victims} session(s), think {args.think:g} s, "
        f"{args.rounds} x {args.seconds:g} s per phase\n"
    )
    print("| phase | requests | failed | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for phase, xs in phases.items():
        print(
            f"| {phase} | {len(xs)} | {len(failures[phase])} | "
            f"{statistics.median(xs) * 1e3:.1f} | {pct(xs, 0.99) * 1e3:.1f} |"
        )
    ratio = pct(phases["attacked"], 0.99) / pct(phases["quiet"], 0.99)
    print(f"\nattacked p99 / quiet p99: {ratio:.2f} (target <= 2)")
    print(f"controller peak memory (VmHWM): {peak / MiB:.0f} MiB")
    for code, took in ATTACK_RUNS.items():
        total = args.rounds * args.seconds
        print(
            f"attacker runs of {code[:24]!r}: {len(took) / total:.1f}/s, p50 {pct(took, 0.5):.2f} s"
        )
    for phase, bad in failures.items():
        for b in bad[:5]:
            print(f"{phase} failure: {b}")


if __name__ == "__main__":
    main()
