"""Faults: nothing lost, nothing left behind (THREATS I5, K1, K7)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox import Orchestrator
from sandbox.audit import AuditError, AuditKeys, verify
from sandbox.backends.base import LABEL_CONTROLLER, LABEL_MANAGED


def test_a_controller_killed_mid_run_is_recovered_and_the_run_recorded_as_interrupted(
    make_settings, backend
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(controller_id=make_settings().controller_id + "k")
    script = textwrap.dedent(f"""
        import os, signal, threading, time
        from pathlib import Path
        from sandbox import Orchestrator, Settings
        orc = Orchestrator(Settings(data_dir=Path({str(settings.data_dir)!r}),
                                    controller_id={settings.controller_id!r}, image={settings.image!r}))
        s = orc.session(owner="crash")
        threading.Thread(target=lambda: s.run("import time; print('busy', flush=True); time.sleep(60)")).start()
        for _ in range(200):
            if any(r["event"] == "run_start" for r in orc.audit.read()):
                break
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    mine = {LABEL_MANAGED: "1", LABEL_CONTROLLER: settings.controller_id}
    assert backend.list_managed(mine), "the killed controller left its containers behind"
    with Orchestrator(settings) as orc:
        assert backend.list_managed(mine) == [] or all(
            c.labels.get("sbx.session") in {s.id for s in orc.sessions()}
            for c in backend.list_managed(mine)
        )
        events = orc.audit.read()
        starts = {r["exec_id"] for r in events if r["event"] == "run_start"}
        ends = {r["exec_id"]: r for r in events if r["event"] == "run_end"}
        assert starts and starts <= set(ends)
        assert any(
            e["outcome"] == "interrupted" and e["reason"] == "controller_restart"
            for e in ends.values()
        )
    keys = AuditKeys.load_or_create(settings.data_dir / "audit-keys.json")
    assert verify(settings.data_dir / "audit.log", keys).ok


def _mount_tiny_tmpfs(path: Path, size: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", 0, f"size={size}".encode()) != 0:
        pytest.fail(f"cannot mount a tmpfs for the test: errno {ctypes.get_errno()}")


def test_a_full_audit_disk_refuses_runs_rather_than_running_them_unrecorded(make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(controller_id=make_settings().controller_id + "f")
    audit_dir = settings.data_dir / "audit-disk"
    audit_dir.mkdir()
    _mount_tiny_tmpfs(audit_dir, "64k")
    try:
        settings = settings.model_copy(update={"audit_log": audit_dir / "audit.log"})
        with Orchestrator(settings) as orc, orc.session(owner="alice") as s:
            assert s.run("print('recorded')").stdout == "recorded\n"
            filler = audit_dir / "filler"
            with open(filler, "wb", buffering=0) as fh:
                try:
                    while True:
                        fh.write(b"x" * 4096)
                except OSError:
                    pass  # the disk is full: what we wanted
            starts_before = sum(r["event"] == "run_start" for r in orc.audit.read())
            refused = None
            for i in range(50):  # the log's last page may still hold a few records
                try:
                    s.run(f"open('/workspace/ran{i}', 'w').write('x')")
                except AuditError:
                    refused = i
                    break
            assert refused is not None, "the audit disk never filled"
            executed = [e.path for e in s.list_files() if e.path.startswith("ran")]
            starts = sum(r["event"] == "run_start" for r in orc.audit.read()) - starts_before
            # Every run that executed has its start on record; the refused one did not run.
            assert len(executed) == starts and f"ran{refused}" not in executed
            filler.unlink()
            assert s.run("print('back')").stdout == "back\n"
        keys = AuditKeys.load_or_create(settings.data_dir / "audit-keys.json")
        assert verify(audit_dir / "audit.log", keys).ok
    finally:
        ctypes.CDLL(None, use_errno=True).umount2(os.fsencode(audit_dir), 2)


def _restartable_dockerd() -> tuple[int, list[str]] | None:
    """The dockerd we may restart: one started by hand (as scripts/setup.sh does), not by an init."""
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and Path(cmd[0].decode(errors="replace")).name == "dockerd":
            # A service manager's dockerd lives in its unit's cgroup; leave that one alone.
            if ".service" in Path(f"/proc/{pid}/cgroup").read_text():
                return None
            return pid, [c.decode() for c in cmd if c]
    return None


@pytest.mark.destructive
def test_a_docker_daemon_restart_mid_run_is_a_clear_error_and_then_runs_work_again(
    make_settings, backend
) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    from sandbox.exceptions import SandboxError

    found = _restartable_dockerd()
    if found is None:
        pytest.skip("the engine is managed by an init system; not restarting it")
    pid, cmd = found
    settings = make_settings(controller_id=make_settings().controller_id + "d")
    with Orchestrator(settings) as orc, orc.session(owner="alice") as s:
        outcome: list[object] = []

        def run() -> None:
            try:
                outcome.append(
                    s.run("import time\nprint('busy', flush=True)\ntime.sleep(60)", timeout=90)
                )
            except SandboxError as exc:
                outcome.append(exc)

        t = threading.Thread(target=run)
        t.start()
        time.sleep(1.5)
        start = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        subprocess.Popen(
            ["setsid", *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        t.join(120)
        assert outcome, "the run hung through a daemon restart"
        assert time.monotonic() - start < 60
        got = outcome[0]
        assert isinstance(got, SandboxError) or (not got.ok)  # type: ignore[attr-defined]
        for _ in range(60):
            try:
                backend.ping()
                break
            except SandboxError:
                time.sleep(1)
        assert s.run("print('back')").stdout == "back\n"
    keys = AuditKeys.load_or_create(settings.data_dir / "audit-keys.json")
    assert verify(settings.data_dir / "audit.log", keys).ok
