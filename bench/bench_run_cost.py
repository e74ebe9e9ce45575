"""What one fresh-container run costs the machine in CPU, and who spends it.

    python bench/bench_run_cost.py [--n 60]

Runs `pass` back to back in one session (each run a fresh container, the next one booting
while it runs) and reads CPU time before and after: the whole machine's (/proc/stat, all but
idle and iowait), the engine's processes (dockerd, containerd, the shims and runc that are
still alive to be read: a lower bound), and this controller's. Run it on a quiet machine: the
machine's figure counts everything that ran meanwhile.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sandbox import Orchestrator, Settings

TICK = os.sysconf("SC_CLK_TCK")
ENGINE = {"dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "runc"}


def engine_cpu() -> float:
    """CPU seconds of the engine's live processes and of the children they reaped."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() not in ENGINE:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        total += sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime
    return total


def machine_cpu() -> float:
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(f) - f[3] - f[4]) / TICK


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=60)
    n = ap.parse_args().n
    data = Path(tempfile.mkdtemp(prefix="sbx-runcost-"))
    with (
        Orchestrator(Settings(data_dir=data, controller_id="runcost")) as orc,
        orc.session(owner="cost") as s,
    ):
        s.run("pass")
        time.sleep(2)  # the first run's removal
        e0, c0, m0, w0 = engine_cpu(), time.process_time(), machine_cpu(), time.monotonic()
        for _ in range(n):
            s.run("pass")
        wall = time.monotonic() - w0
        time.sleep(3)  # the last runs' removals
        e1, c1, m1 = engine_cpu(), time.process_time(), machine_cpu()
    print(f"{n} runs back to back in {wall:.1f} s ({n / wall:.1f}/s); CPU a run:")
    print(f"  machine    {1000 * (m1 - m0) / n:6.0f} ms  (every process and the kernel)")
    print(f"  engine     {1000 * (e1 - e0) / n:6.0f} ms  (at least: exited shims are not counted)")
    print(f"  controller {1000 * (c1 - c0) / n:6.0f} ms")


if __name__ == "__main__":
    main()
