"""Resource exhaustion (THREATS A): the run may hurt itself, is reported accurately, and
nothing spills onto the host or a peer session."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator

import pytest

from sandbox import Limits, Orchestrator, QuotaExceededError, Session
from sandbox.backends.base import LABEL_EXEC, LABEL_MANAGED
from sandbox.backends.docker import DockerBackend
from tests.security.conftest import probe

SMALL = Limits(
    memory_mb=128,
    workspace_mb=8,
    workspace_inodes=2000,
    tmp_mb=8,
    max_file_mb=4,
    output_bytes=64 * 1024,
    timeout_s=20,
)


@pytest.fixture
def small(orc: Orchestrator) -> Iterator[Session]:
    with orc.session(owner="attacker", limits=SMALL) as s:
        yield s


def peer_check(orc: Orchestrator) -> tuple[threading.Thread, list[str]]:
    """A peer session doing a small fixed job while an attack runs (THREATS peer canary)."""
    out: list[str] = []

    def job() -> None:
        with orc.session(owner="peer") as peer:
            out.append(peer.run("print(sum(range(1000)))", timeout=20).stdout)

    t = threading.Thread(target=job)
    t.start()
    return t, out


@pytest.mark.destructive
def test_fork_bomb_hits_the_pids_limit_and_the_peer_is_unaffected(
    small: Session, orc: Orchestrator, backend: DockerBackend
) -> None:
    host_pids_before = len([p for p in os.listdir("/proc") if p.isdigit()])
    t, peer = peer_check(orc)
    r = small.run(
        """
import os
errors = 0
while True:
    try:
        os.fork()
    except OSError:
        errors += 1
""",
        timeout=4,
    )
    t.join(60)
    assert r.timed_out and r.exit_code == 137
    assert peer == ["499500\n"]
    small.settle()
    assert backend.list_managed({LABEL_MANAGED: "1", LABEL_EXEC: r.exec_id}) == []
    host_pids_after = len([p for p in os.listdir("/proc") if p.isdigit()])
    assert host_pids_after < host_pids_before + 50


def test_thread_bomb_is_capped_by_the_pids_limit(small: Session) -> None:
    got = probe(
        small,
        """
import json, threading, time
n = 0
try:
    while True:
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start(); n += 1
except RuntimeError:
    pass
print(json.dumps(n))
""",
    )
    assert 0 < got < 128


@pytest.mark.destructive
def test_memory_bomb_is_oom_killed_and_reported(small: Session, orc: Orchestrator) -> None:
    t, peer = peer_check(orc)
    r = small.run("b = []\nwhile True: b.append(bytearray(1 << 20))")
    t.join(60)
    assert r.oom_killed and r.exit_code == 137 and not r.timed_out
    assert peer == ["499500\n"]


def test_one_huge_allocation_fails_or_is_oom_killed(small: Session) -> None:
    r = small.run("""
try:
    x = bytearray(64 << 30)
except MemoryError:
    print('MemoryError')
""")
    assert r.stdout == "MemoryError\n" or r.oom_killed


def test_cpu_spin_is_killed_at_the_timeout(small: Session) -> None:
    r = small.run("while True: pass", timeout=1.5)
    assert r.timed_out and r.exit_code == 137
    assert r.duration_s < 1.5 + 2


def test_blocking_forever_is_killed_at_the_timeout(small: Session) -> None:
    r = small.run("import sys; sys.stdin.read(); import time; time.sleep(1000)", timeout=1)
    assert r.timed_out


def test_filling_the_workspace_stops_at_the_quota_and_not_the_host_disk(
    small: Session, orc: Orchestrator
) -> None:
    free_before = shutil.disk_usage(orc.settings.data_dir).free
    got = probe(
        small,
        """
import errno, json, os
written, err = 0, None
try:
    for i in range(100):
        with open(f'fill{i}', 'wb') as f:
            for _ in range(3):
                f.write(b'x' * (1 << 20)); written += 1 << 20
except OSError as e:
    err = errno.errorcode[e.errno]
print(json.dumps({"written": written, "err": err}))
""",
    )
    assert got["err"] == "ENOSPC" and got["written"] <= 8 * 1024 * 1024
    assert shutil.disk_usage(orc.settings.data_dir).free > free_before - 16 * 1024 * 1024
    with pytest.raises(QuotaExceededError):
        small.upload("more.bin", b"x" * (2 * 1024 * 1024))
    assert not [e for e in small.list_files() if e.path.startswith(".sbx-upload")]
    with orc.session(owner="attacker", limits=SMALL) as other:
        assert other.run("open('ok', 'w').write('fine'); print('ok')").stdout == "ok\n"


def test_inode_exhaustion_stops_at_the_inode_quota(small: Session) -> None:
    got = probe(
        small,
        """
import errno, json, os
n, err = 0, None
try:
    while n < 100000:
        open(f'f{n}', 'w').close(); n += 1
except OSError as e:
    err = errno.errorcode[e.errno]
print(json.dumps([n, err]))
""",
    )
    assert got[1] == "ENOSPC" and got[0] < 2000


def test_filling_tmp_stops_at_its_size(small: Session) -> None:
    got = probe(
        small,
        """
import errno, json
n, err = 0, None
try:
    with open('/tmp/fill', 'wb') as f:
        while True:
            f.write(b'x' * (1 << 20)); f.flush(); n += 1
except OSError as e:
    err = errno.errorcode[e.errno]
print(json.dumps([n, err]))
""",
    )
    assert got[1] in ("ENOSPC", "EFBIG") and got[0] <= 8


def test_a_single_file_cannot_pass_the_file_size_limit(small: Session) -> None:
    got = probe(
        small,
        """
import errno, json
try:
    with open('big', 'wb') as f:
        f.write(b'x' * (5 << 20))
    print(json.dumps('OK'))
except OSError as e:
    print(json.dumps(errno.errorcode[e.errno]))
""",
    )
    assert got == "EFBIG"


def test_writing_to_skills_is_refused(small: Session) -> None:
    got = probe(
        small,
        """
import errno, json
try:
    open('/skills/x.py', 'w').write('x'); print(json.dumps('OK'))
except OSError as e:
    print(json.dumps(errno.errorcode[e.errno]))
""",
    )
    assert got == "EROFS"


def test_skills_saved_through_the_host_stop_at_the_owner_quota(small: Session) -> None:
    small.save_skill("a.bin", b"x" * (12 * 1024 * 1024))
    with pytest.raises(QuotaExceededError):
        small.save_skill("b.bin", b"x" * (8 * 1024 * 1024))
    small.delete_skill("a.bin")


def test_stdout_flood_is_cut_at_the_cap_without_holding_it(small: Session) -> None:
    r = small.run(
        "import sys\nchunk = 'y' * 65536\nfor _ in range(3000): sys.stdout.write(chunk)\nprint('end', file=sys.stderr)"
    )
    assert r.output_truncated and len(r.stdout) == 64 * 1024 and set(r.stdout) == {"y"}
    assert r.stderr == "end\n" and r.exit_code == 0


def test_one_huge_line_without_newline_is_cut_too(small: Session) -> None:
    r = small.run("import os\nfor _ in range(200): os.write(1, b'z' * (1 << 20))")
    assert r.output_truncated and len(r.stdout) == 64 * 1024


def test_stdout_and_stderr_floods_have_separate_caps(small: Session) -> None:
    r = small.run(
        "import sys\nfor _ in range(2000):\n    sys.stdout.write('o' * 1000); sys.stderr.write('e' * 1000)"
    )
    assert r.output_truncated and len(r.stdout) == len(r.stderr) == 64 * 1024


def test_file_descriptor_exhaustion_stops_at_nofile(small: Session) -> None:
    got = probe(
        small,
        """
import errno, json, socket
held, err = [], None
try:
    while True:
        held.append(socket.socket(socket.AF_UNIX))
except OSError as e:
    err = errno.errorcode[e.errno]
print(json.dumps([len(held), err]))
""",
    )
    assert got[1] == "EMFILE" and got[0] < 256


def test_abort_leaves_no_core_file_and_reports_the_signal(small: Session) -> None:
    r = small.run("import os; os.abort()")
    assert r.exit_code == 134  # 128 + SIGABRT
    assert not [e for e in small.list_files() if "core" in e.path]


def test_a_run_that_spams_output_until_timeout_still_ends_on_time(small: Session) -> None:
    start = time.monotonic()
    r = small.run("import sys\nwhile True: sys.stdout.write('x' * 4096)", timeout=2)
    assert r.timed_out and r.output_truncated
    assert time.monotonic() - start < 10
