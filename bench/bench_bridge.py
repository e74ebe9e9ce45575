"""Round trip of a no-op MCP tool call from sandbox code, next to the same call made on the host.

    python bench/bench_bridge.py [--calls 2000] [--blocks 10]

Both sides call the same tool on the same upstream stdio connection; they alternate in
blocks so noise hits them alike. Reports p50/p99, calls/s, and what the bridge adds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sandbox import Orchestrator, Settings

FAULTY = str(Path(__file__).parents[1] / "tests" / "servers" / "faulty.py")

INSIDE = """
import json, time
from servers.faulty import noop
times = []
for _ in range({n}):
    t = time.perf_counter()
    noop()
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--calls", type=int, default=2000, help="calls per side")
    ap.add_argument("--blocks", type=int, default=10)
    args = ap.parse_args()
    per_block = args.calls // args.blocks
    config = {"mcpServers": {"faulty": {"command": sys.executable, "args": [FAULTY]}}}
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="sbx-bench-")),
        controller_id="benchbridge",
        tool_limits={"calls_per_second": 1e9, "burst": 10**9},
    )  # type: ignore[arg-type]
    inside: list[float] = []
    direct: list[float] = []
    with Orchestrator(settings, mcp_config=config) as orc, orc.session(owner="bench") as s:
        bridge = orc.bridge
        assert bridge is not None
        pool = bridge.upstreams
        s.run(INSIDE.format(n=50))  # warm-up both paths
        pool.submit(pool.call("faulty", "noop", {}, 5, owner="bench")).result()
        for _ in range(args.blocks):
            r = s.run(INSIDE.format(n=per_block), timeout=30)
            inside += json.loads(r.stdout)
            for _ in range(per_block):
                t = time.perf_counter()
                pool.submit(pool.call("faulty", "noop", {}, 5, owner="bench")).result()
                direct.append(time.perf_counter() - t)
    p50_in, p50_direct = statistics.median(inside), statistics.median(direct)
    print(f"# no-op tool call, {len(inside)} calls per side in {args.blocks} alternating blocks\n")
    print("| path | p50 ms | p99 ms | calls/s (1 caller) |")
    print("|---|---:|---:|---:|")
    for name, xs in (
        ("sandbox code → bridge → upstream", inside),
        ("host, direct on the same connection", direct),
    ):
        print(
            f"| {name} | {statistics.median(xs) * 1e3:.3f} | {pct(xs, 0.99) * 1e3:.3f} | {len(xs) / sum(xs):.0f} |"
        )
    print(
        f"\nbridge adds {(p50_in - p50_direct) * 1e3:.3f} ms at p50 (ratio {p50_in / p50_direct:.2f}x)"
    )


if __name__ == "__main__":
    main()
