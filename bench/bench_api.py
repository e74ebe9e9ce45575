"""`run("print(1)")` through the HTTP API with the Python client, next to the embedded call.

    python bench/bench_api.py [--n 30] [--clients 1 4 16] [--seconds 8]

Servers are real `sandbox serve` processes (warm and cold), the client is `sandbox.client.Client`;
the embedded side is an Orchestrator in this process. Latencies are measured round-robin in
one loop; then sustained runs/s with N concurrent clients, each with its own session.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from serve import sandbox_serve

from sandbox import Orchestrator, Session, Settings
from sandbox.backends.docker import DockerBackend
from sandbox.client import Client, RemoteSession
from sandbox.images import ensure_image
from sandbox.keys import KeyStore


@contextmanager
def server(image: str, warm: bool) -> Iterator[tuple[str, str]]:
    data = Path(tempfile.mkdtemp(prefix="sbx-bench-api-"))
    key = KeyStore(data / "keys.json").create("bench")[1]
    env = {
        **os.environ,
        "SANDBOX_DATA_DIR": str(data),
        "SANDBOX_CONTROLLER_ID": f"benchapi{os.getpid()}{warm:d}",
        "SANDBOX_IMAGE": image,
        "SANDBOX_WARM": str(warm).lower(),
        "SANDBOX_API__RUNS_PER_KEY": "32",
        "SANDBOX_API__RUNS_TOTAL": "32",
        "SANDBOX_API__RATE_PER_S": "10000",
        "SANDBOX_API__RATE_BURST": "10000",
    }
    with sandbox_serve(env) as (url, _):
        yield url, key


def timed_run(session: Session | RemoteSession, warm: bool) -> Callable[[], float]:
    def once() -> float:
        if warm and isinstance(session, Session):
            session.ready(60)
        elif warm:
            time.sleep(0.25)  # the server's next container warms up meanwhile, as with think time
        start = time.perf_counter()
        r = session.run("print(1)")
        elapsed = time.perf_counter() - start
        if r.stdout != "1\n":
            raise RuntimeError(r)
        return elapsed

    return once


def throughput(url: str, key: str, clients: int, seconds: float) -> float:
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        with Client(url, key) as c, c.session() as s:
            s.run("print(1)")  # first, warm container in place
            while time.monotonic() < stop:
                counts[i] += s.run("print(1)").stdout == "1\n"

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - start)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--clients", type=int, nargs="*", default=[1, 4, 16])
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    image = ensure_image(DockerBackend(), "sbx-base:bookworm")
    tmp = Path(tempfile.mkdtemp(prefix="sbx-bench-emb-"))
    with (
        server(image, warm=True) as (warm_url, warm_key),
        server(image, warm=False) as (cold_url, cold_key),
        Orchestrator(Settings(data_dir=tmp / "w", controller_id="benchembw", image=image)) as ew,
        Orchestrator(
            Settings(data_dir=tmp / "c", controller_id="benchembc", image=image, warm=False)
        ) as ec,
        Client(warm_url, warm_key) as wc,
        Client(cold_url, cold_key) as cc,
    ):
        variants = {
            "embedded, warm": timed_run(ew.session(owner="b"), True),
            "HTTP API + client, warm": timed_run(wc.session(), True),
            "embedded, cold": timed_run(ec.session(owner="b"), False),
            "HTTP API + client, cold": timed_run(cc.session(), False),
        }
        for fn in variants.values():
            fn()
        samples: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.n):
            for name, fn in variants.items():
                samples[name].append(fn())
        rates = {n: throughput(warm_url, warm_key, n, args.seconds) for n in args.clients}
    print(
        f"# print(1): HTTP API with the Python client vs embedded, n={args.n} each, round-robin\n"
    )
    print("| variant | p50 ms | p95 ms |")
    print("|---|---:|---:|")
    for name, xs in samples.items():
        print(
            f"| {name} | {statistics.median(xs) * 1e3:.1f} | {sorted(xs)[int(0.95 * (len(xs) - 1))] * 1e3:.1f} |"
        )
    print(
        "\n# sustained runs/s through the API (warm server, each client its own session, back to back)\n"
    )
    print("| concurrent clients | runs/s |")
    print("|---:|---:|")
    for n, rate in rates.items():
        print(f"| {n} | {rate:.1f} |")


if __name__ == "__main__":
    main()
