"""Latency and throughput of `run("print(1)")`, side by side with a bare `docker run` and llm-sandbox.

    python bench/bench_runs.py [--n 40] [--clients 1 2 4] [--seconds 8] [--no-llm-sandbox]

Every variant is measured round-robin in the same loop, so machine noise hits them alike;
results are reported as p50/p95 and as ratios to a bare hardened `docker run --rm` of the
same image. Needs a running engine and the sandbox image (scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sandbox import Orchestrator, Session, Settings
from sandbox.backends.base import LABEL_MANAGED, LABEL_SESSION
from sandbox.backends.docker import DockerBackend
from sandbox.images import ensure_image

CODE = "print(1)"


def bare_docker_run(image: str, runtime: str) -> Callable[[], None]:
    cmd = [
        "docker", "run", "--rm", "--runtime", runtime, "--init", "--read-only", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--network", "none", "--user", "1000:1000",
        "--pids-limit", "128", "--memory", "512m", "--memory-swap", "512m", "--cpus", "1",
        "--log-driver", "none", "--tmpfs", "/tmp:rw,nosuid,nodev,noexec,size=64m",
        "--entrypoint", "python3", image, "-c", CODE,
    ]  # fmt: skip

    def once() -> None:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        if out != "1\n":
            raise RuntimeError(f"bare docker run printed {out!r}")

    return once


def ours(session: Session, warm: bool) -> Callable[[], None]:
    def once() -> None:
        if warm and not session.ready(60):
            raise RuntimeError("warm container did not come up")
        r = session.run(CODE)
        if r.stdout != "1\n":
            raise RuntimeError(f"sandbox printed {r!r}")

    return once


def _llm_session(image: str):  # type: ignore[no-untyped-def]
    from llm_sandbox import SandboxSession

    # Our image's entrypoint is our runtime; llm-sandbox wants a container that idles. An init
    # process lets its stop() end at once instead of waiting out Docker's 10 s grace period.
    return SandboxSession(
        lang="python",
        image=image,
        keep_template=True,
        skip_environment_setup=True,
        runtime_configs={"entrypoint": ["sleep", "infinity"], "init": True},
        workdir="/tmp",
        verbose=False,
    )


def llm_sandbox_fresh(image: str) -> Callable[[], None]:
    def once() -> None:
        with _llm_session(image) as s:
            out = s.run(CODE).stdout
        if out.strip() != "1":
            raise RuntimeError(f"llm-sandbox printed {out!r}")

    return once


def llm_sandbox_reused(image: str) -> tuple[Callable[[], None], Callable[[], None]]:
    session = _llm_session(image)
    session.open()

    def once() -> None:
        out = session.run(CODE).stdout
        if out.strip() != "1":
            raise RuntimeError(f"llm-sandbox printed {out!r}")

    return once, session.close


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def memory_cgroup(container_id: str) -> Path:
    """The container's memory cgroup folder (cgroup v1), wherever its parent put it."""
    pid = int(
        subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", container_id],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    raise RuntimeError(f"no memory cgroup for {container_id}")


def idle_warm_memory(session: Session, backend: DockerBackend) -> dict[str, float]:
    session.ready(60)
    time.sleep(1.0)  # let the interpreter settle after its start
    (c,) = backend.list_managed({LABEL_MANAGED: "1", LABEL_SESSION: session.id})
    base = memory_cgroup(c.ref.id)
    usage = int((base / "memory.usage_in_bytes").read_text())
    stat = dict(line.split() for line in (base / "memory.stat").read_text().splitlines())
    return {
        "usage_mib": usage / 2**20,
        "rss_mib": int(stat["total_rss"]) / 2**20,
        "cache_mib": int(stat["total_cache"]) / 2**20,
    }


def throughput(orc: Orchestrator, clients: int, seconds: float) -> float:
    sessions = [orc.session(owner=f"bench{i}") for i in range(clients)]
    for s in sessions:
        s.ready(60)
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            if sessions[i].run(CODE).stdout == "1\n":
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    for s in sessions:
        s.close()
    return sum(counts) / elapsed


def gate_ab(
    orc: Orchestrator, clients: list[int], seconds: float
) -> dict[int, tuple[float, float]]:
    """Runs/s with the boot gate off, then on, alternating, so noise hits both alike."""
    gate = orc._parts.boots  # a bench may reach in: the limit is read at every boot
    on_limit = gate.limit or (os.cpu_count() or 1)
    out: dict[int, tuple[float, float]] = {}
    for c in clients:
        got: dict[int, list[float]] = {0: [], on_limit: []}
        for _ in range(2):
            for limit in got:
                gate.limit = limit
                got[limit].append(throughput(orc, c, seconds / 2))
        gate.limit = on_limit
        out[c] = (statistics.mean(got[0]), statistics.mean(got[on_limit]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--clients", type=int, nargs="*", default=[1, 2, 4])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--no-llm-sandbox", action="store_true")
    ap.add_argument("--json", type=Path, help="also write raw numbers here")
    ap.add_argument(
        "--gate-ab",
        action="store_true",
        help="sustained runs/s with the boot gate off and on, interleaved (core/gate.py)",
    )
    ap.add_argument(
        "--runtime", choices=["runc", "runsc"], default="runc", help="OCI runtime for every variant"
    )
    args = ap.parse_args()

    backend = DockerBackend()
    image = ensure_image(backend, "sbx-base:bookworm")
    data = Path(tempfile.mkdtemp(prefix="sbx-bench-"))
    base = {"image": image, "controller_id": "bench", "runtime": args.runtime}
    with (
        Orchestrator(Settings(data_dir=data / "warm", warm=True, **base)) as warm_orc,
        Orchestrator(
            Settings(
                data_dir=data / "cold",
                warm=False,
                controller_id="benchcold",
                image=image,
                runtime=args.runtime,
            )
        ) as cold_orc,
    ):
        warm_s = warm_orc.session(owner="bench")
        cold_s = cold_orc.session(owner="bench")
        variants: dict[str, Callable[[], None]] = {
            "bare docker run --rm (CLI)": bare_docker_run(image, args.runtime),
            "sandbox cold run (no warm container)": ours(cold_s, warm=False),
            "sandbox warm run": ours(warm_s, warm=True),
        }
        closers: list[Callable[[], None]] = []
        if not args.no_llm_sandbox:
            variants["llm-sandbox, fresh session per run"] = llm_sandbox_fresh(image)
            reused, close = llm_sandbox_reused(image)
            closers.append(close)
            variants["llm-sandbox, one container reused (not fresh)"] = reused
        for fn in variants.values():  # warm-up: image cache, imports, pools
            fn()
        samples: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.n):
            for name, fn in variants.items():
                samples[name].append(timed(fn))
        for close in closers:
            close()
        memory = idle_warm_memory(warm_s, backend)
        rates = {c: throughput(warm_orc, c, args.seconds) for c in args.clients}
        gated = gate_ab(warm_orc, args.clients, args.seconds) if args.gate_ab else {}

    bare = statistics.median(samples["bare docker run --rm (CLI)"])
    print(f"# run('print(1)') latency, n={args.n} each, round-robin in one process\n")
    print("| variant | p50 ms | p95 ms | p50 / bare docker run |")
    print("|---|---:|---:|---:|")
    for name, xs in samples.items():
        p50 = statistics.median(xs)
        print(f"| {name} | {p50 * 1e3:.1f} | {pct(xs, 0.95) * 1e3:.1f} | {p50 / bare:.3f} |")
    print("\n# sustained fresh-container runs per second (warm pool, back-to-back)\n")
    print("| concurrent sessions | runs/s |")
    print("|---:|---:|")
    for c, rate in rates.items():
        print(f"| {c} | {rate:.1f} |")
    if gated:
        print("\n# the same with the boot gate off and on, interleaved (2 rounds each)\n")
        print("| concurrent sessions | gate off runs/s | gate on runs/s | on / off |")
        print("|---:|---:|---:|---:|")
        for c, (off, on) in gated.items():
            print(f"| {c} | {off:.1f} | {on:.1f} | {on / off:.2f} |")
    print("\n# idle warm container, host memory (its memory cgroup)\n")
    print(
        f"usage {memory['usage_mib']:.2f} MiB (rss {memory['rss_mib']:.2f} MiB, page cache {memory['cache_mib']:.2f} MiB)"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"samples": samples, "rates": rates, "memory": memory}, indent=1)
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
