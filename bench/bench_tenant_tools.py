"""What a per-owner MCP server costs: the first call of a new owner (its process starts),
later calls, many owners starting at once, and each process's memory.

    python bench/bench_tenant_tools.py [--owners 8] [--calls 200]

Runs the example mailer (an official-SDK stdio server) through the controller's upstream
pool on the host; no container engine is needed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from sandbox.bridge.config import load_config
from sandbox.bridge.pool import UpstreamPool
from sandbox.models import ToolLimits

MAILER = str(Path(__file__).parents[1] / "examples" / "mcp_servers" / "mailer.py")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def mailer_pids() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if MAILER.encode() in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--owners", type=int, default=8)
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    entry = {"command": sys.executable, "args": [MAILER]}
    t = time.perf_counter()
    pool = UpstreamPool(
        load_config({"mcpServers": {"mailer": entry, "shared": {**entry, "shared": True}}}),
        ToolLimits(max_upstreams_per_server=args.owners + 1, max_upstreams=args.owners + 2),
    )
    boot = time.perf_counter() - t

    def call(server: str, owner: str) -> float:
        t = time.perf_counter()
        pool.submit(pool.call(server, "list_outbox", {}, 30, owner=owner)).result()
        return time.perf_counter() - t

    try:
        first = call("mailer", "first")
        warm = [call("mailer", "first") for _ in range(args.calls)]
        shared = [call("shared", f"o{i % 8}") for i in range(args.calls)]
        t = time.perf_counter()
        futures = [
            pool.submit(pool.call("mailer", "list_outbox", {}, 30, owner=f"many{i}"))
            for i in range(args.owners)
        ]
        for f in futures:
            f.result()
        burst = time.perf_counter() - t
        rss = [rss_mb(p) for p in mailer_pids()]
    finally:
        pool.close()
    print(f"# per-owner MCP server cost (example mailer, {sys.version.split()[0]})\n")
    print("| what | value |")
    print("|---|---:|")
    print(f"| start: list both servers (per-owner listing process stopped after) | {boot:.2f} s |")
    print(f"| a new owner's first call (its process starts) | {first * 1e3:.0f} ms |")
    print(f"| later calls of that owner, p50 | {statistics.median(warm) * 1e3:.2f} ms |")
    print(f"| calls to the shared server, p50 | {statistics.median(shared) * 1e3:.2f} ms |")
    print(
        f"| {args.owners} new owners' first calls at once, until the last answers | {burst:.2f} s |"
    )
    print(
        f"| memory per mailer process (RSS, median of {len(rss)}) | {statistics.median(rss):.0f} MB |"
    )


if __name__ == "__main__":
    main()
