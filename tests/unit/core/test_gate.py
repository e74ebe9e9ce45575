"""Boxes booting at once: the cap holds under many threads, and owners take turns."""

from __future__ import annotations

import threading
import time

from sandbox.core.gate import BootGate
from tests.polling import wait_until


def _hold(gate: BootGate, owner: str, entered: list[str], release: threading.Event) -> None:
    with gate.boot(owner):
        entered.append(owner)
        release.wait(10)


def test_many_threads_never_boot_more_than_the_limit() -> None:
    gate = BootGate(3)
    peak, lock, now = [0], threading.Lock(), [0]

    def boot(owner: str) -> None:
        for _ in range(20):
            with gate.boot(owner):
                with lock:
                    now[0] += 1
                    peak[0] = max(peak[0], now[0])
                time.sleep(0.0005)
                with lock:
                    now[0] -= 1

    threads = [threading.Thread(target=boot, args=(f"o{i % 5}",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert peak[0] == 3
    assert gate.booting() == 0


def test_an_owner_alone_uses_every_place() -> None:
    gate, entered, release = BootGate(2), [], threading.Event()
    threads = [threading.Thread(target=_hold, args=(gate, "a", entered, release)) for _ in range(3)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(entered) == 2)
    assert gate.booting("a") == 2
    release.set()
    for t in threads:
        t.join(5)
    assert entered == ["a", "a", "a"]


def test_a_churning_owner_does_not_go_before_one_with_nothing_booting() -> None:
    gate, entered, release = BootGate(2), [], threading.Event()
    first = threading.Event()
    # The churner fills both places (one boot long, one short), and queues four more.
    long = threading.Thread(target=_hold, args=(gate, "churn", entered, release))
    long.start()
    assert wait_until(lambda: len(entered) == 1)
    churn = [threading.Thread(target=_hold, args=(gate, "churn", entered, first)) for _ in range(5)]
    for t in churn:
        t.start()
    assert wait_until(lambda: len(entered) == 2)
    time.sleep(0.05)  # the other four are waiting now
    quiet = threading.Thread(target=_hold, args=(gate, "quiet", entered, release))
    quiet.start()
    time.sleep(0.05)
    first.set()  # the short boot ends: its place goes to the quiet owner, not the churner
    assert wait_until(lambda: "quiet" in entered)
    assert entered.index("quiet") == 2
    churn.append(long)
    release.set()
    for t in [*churn, quiet]:
        t.join(5)
    assert gate.booting() == 0


def test_no_limit_means_no_waiting() -> None:
    gate, entered, release = BootGate(0), [], threading.Event()
    threads = [
        threading.Thread(target=_hold, args=(gate, "a", entered, release)) for _ in range(10)
    ]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(entered) == 10)
    release.set()
    for t in threads:
        t.join(5)


def test_a_failed_boot_gives_its_place_back() -> None:
    gate = BootGate(1)
    try:
        with gate.boot("a"):
            raise RuntimeError("engine refused")
    except RuntimeError:
        pass
    assert gate.booting() == 0
    with gate.boot("b"):
        assert gate.booting("b") == 1
