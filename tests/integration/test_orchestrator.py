"""The public API end to end on a real Docker engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import docker
import pytest

from sandbox import (
    InvalidInputError,
    NotFoundError,
    Orchestrator,
    Session,
    SessionClosedError,
    UnsafePathError,
)
from sandbox.backends.base import LABEL_EXEC, LABEL_MANAGED, LABEL_SESSION
from sandbox.backends.docker import DockerBackend


def containers_of(backend: DockerBackend, session: Session) -> list[str]:
    return [c.ref.id for c in backend.list_managed({LABEL_MANAGED: "1", LABEL_SESSION: session.id})]


def test_print_returns_stdout_and_a_zero_exit_code(session: Session) -> None:
    r = session.run("print(1)")
    assert (r.stdout, r.stderr, r.exit_code) == ("1\n", "", 0)
    assert r.ok and r.duration_s > 0 and not (r.timed_out or r.oom_killed or r.output_truncated)


def test_exit_codes_exceptions_and_env_come_back(session: Session) -> None:
    assert session.run("import sys; sys.exit(3)").exit_code == 3
    r = session.run("raise RuntimeError('boom')")
    assert r.exit_code == 1 and "RuntimeError: boom" in r.stderr
    r = session.run("import os; print(os.environ['GREETING'])", env={"GREETING": "hi"})
    assert r.stdout == "hi\n"


def test_every_run_gets_a_new_container(session: Session) -> None:
    a = session.run("open('/tmp/mark', 'w').write('x'); import os; print(os.getpid())")
    b = session.run("import os; print(os.path.exists('/tmp/mark'))")
    assert a.exec_id != b.exec_id
    assert b.stdout == "False\n"


def test_workspace_files_persist_between_runs_and_reach_the_host(session: Session) -> None:
    session.upload("data/in.csv", b"a,b\n1,2\n")
    r = session.run(
        "rows = open('data/in.csv').read().splitlines(); open('out.txt', 'w').write(str(len(rows)))"
    )
    assert r.exit_code == 0
    assert session.download("out.txt") == b"2"
    assert {e.path for e in session.list_files()} >= {"data", "data/in.csv", "out.txt"}
    assert session.run("print(open('/workspace/out.txt').read())").stdout == "2\n"


def test_timeout_kills_the_container_and_keeps_partial_output(session: Session) -> None:
    r = session.run("import time\nprint('started', flush=True)\ntime.sleep(60)", timeout=1)
    assert r.timed_out and r.exit_code == 137 and r.stdout == "started\n"
    assert r.duration_s < 10


def test_runs_work_with_warming_off(make_settings) -> None:  # type: ignore[no-untyped-def]
    with Orchestrator(make_settings(warm=False)) as orc, orc.session(owner="bob") as s:
        assert s.run("print(2)").stdout == "2\n"
        assert not s.ready(timeout=0.1)


def test_a_warm_container_reaped_while_idle_is_replaced_transparently(
    session: Session, backend: DockerBackend
) -> None:
    assert session.ready()
    for cid in containers_of(backend, session):
        backend.remove(type("R", (), {"id": cid})())  # type: ignore[arg-type]
    assert session.run("print('still here')").stdout == "still here\n"


def test_closing_a_session_removes_its_containers_and_workspace(
    orc: Orchestrator, backend: DockerBackend
) -> None:
    s = orc.session(owner="alice")
    s.run("open('f', 'w').write('1')")
    workspace = s._workspace
    assert s.ready()
    s.close()
    assert containers_of(backend, s) == []
    assert not workspace.exists()
    with pytest.raises(SessionClosedError):
        s.run("print(1)")
    with pytest.raises(NotFoundError):
        orc.get_session(s.id)


def test_bad_input_gets_typed_errors_and_the_session_keeps_working(
    orc: Orchestrator, session: Session
) -> None:
    with pytest.raises(InvalidInputError):
        session.run("print(1)", timeout=10_000)
    with pytest.raises(InvalidInputError):
        session.run("print(1)", env={"BAD NAME": "x"})
    with pytest.raises(InvalidInputError):
        session.run("x = 1\x00")
    with pytest.raises(InvalidInputError):
        session.run("#" * (2 * 1024 * 1024))
    with pytest.raises(UnsafePathError):
        session.upload("../escape", b"x")
    with pytest.raises(InvalidInputError):
        orc.session(owner="../root")
    assert session.run("print('fine')").stdout == "fine\n"


def test_no_process_survives_its_run(session: Session, backend: DockerBackend) -> None:
    code = textwrap.dedent("""
        import os, signal, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                time.sleep(300)
            os._exit(0)
        print('parent done')
    """)
    r = session.run(code)
    assert r.stdout == "parent done\n"
    session.settle()
    assert backend.list_managed({LABEL_MANAGED: "1", LABEL_EXEC: r.exec_id}) == []


def test_container_posture_seen_from_the_host(session: Session, backend: DockerBackend) -> None:
    assert session.ready()
    (cid,) = containers_of(backend, session)
    info = docker.APIClient().inspect_container(cid)
    hc = info["HostConfig"]
    assert hc["Privileged"] is False and hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"] and not hc["CapAdd"]
    assert "no-new-privileges:true" in hc["SecurityOpt"]
    assert any(o.startswith("seccomp=") and "io_uring" not in o for o in hc["SecurityOpt"])
    assert hc["NetworkMode"] == "none" and hc["PidsLimit"] == 128
    assert hc["Memory"] == hc["MemorySwap"] == 512 * 1024 * 1024
    assert hc["NanoCpus"] == 10**9 and hc["Init"] is True
    assert hc["LogConfig"]["Type"] == "none" and not hc["Devices"]
    assert {u["Name"] for u in hc["Ulimits"]} == {"nofile", "core", "fsize"}
    assert sorted(b.split(":", 1)[1] for b in hc["Binds"]) == [
        "/run/sbx:ro",
        "/skills:ro",
        "/workspace:rw",
    ]
    assert "/tmp" in hc["Tmpfs"] and "noexec" in hc["Tmpfs"]["/tmp"]
    assert info["Config"]["User"] == "1000:1000" and info["Config"]["Hostname"] == "sandbox"
    assert not any("docker.sock" in b for b in hc["Binds"])
    labels = info["Config"]["Labels"]
    assert labels["sbx.owner"] == "alice" and labels["sbx.session"] == session.id


def test_a_sigkilled_controller_leaves_leftovers_the_next_start_removes(
    make_settings, backend: DockerBackend
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from sandbox import Orchestrator, Settings
        orc = Orchestrator(Settings(data_dir=Path({str(settings.data_dir)!r}),
                                    controller_id={settings.controller_id!r}, image={settings.image!r}))
        s = orc.session(owner="crash")
        s.run("open('f','w').write('x')")
        assert s.ready()
        print(s.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    sid = proc.stdout.strip()
    left = backend.list_managed({LABEL_MANAGED: "1", LABEL_SESSION: sid})
    assert left, "the killed controller should have left its warm container behind"
    assert any((settings.data_dir / "workspaces").iterdir())
    with Orchestrator(settings):
        assert backend.list_managed({LABEL_MANAGED: "1", LABEL_SESSION: sid}) == []
        assert not any((settings.data_dir / "workspaces").iterdir())


def test_gc_removes_expired_containers_and_never_touches_unlabelled_ones(
    orc: Orchestrator, backend: DockerBackend
) -> None:
    api = docker.APIClient()
    decoy = api.create_container(orc.image, command=["true"], labels={"not.ours": "1"})["Id"]
    expired = api.create_container(
        orc.image,
        command=["true"],
        labels={"sbx.managed": "1", "sbx.controller": "someone-else", "sbx.deadline": "1"},
    )["Id"]
    try:
        assert orc.gc() >= 1
        assert api.inspect_container(decoy)["Id"] == decoy
        with pytest.raises(docker.errors.NotFound):
            api.inspect_container(expired)
    finally:
        api.remove_container(decoy, force=True)


def test_a_second_controller_on_the_same_data_dir_is_refused(orc: Orchestrator) -> None:
    from sandbox import ControllerBusyError

    with pytest.raises(ControllerBusyError):
        Orchestrator(orc.settings)


def test_cli_run_prints_output_and_exits_with_the_code(tmp_path, make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings()
    script = tmp_path / "job.py"
    script.write_text("import sys; print('from file'); sys.exit(5)")
    env = {
        **os.environ,
        "SANDBOX_DATA_DIR": str(settings.data_dir),
        "SANDBOX_CONTROLLER_ID": settings.controller_id,
        "SANDBOX_IMAGE": settings.image or "",
    }
    proc = subprocess.run(
        ["sandbox", "run", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == "from file\n"


def test_a_container_removed_mid_run_ends_the_run_at_once(
    session: Session, backend: DockerBackend
) -> None:
    import threading
    import time

    assert session.ready()
    (cid,) = containers_of(backend, session)
    killer = threading.Timer(1.0, lambda: docker.APIClient().remove_container(cid, force=True))
    killer.start()
    start = time.monotonic()
    r = session.run("import time\nprint('working', flush=True)\ntime.sleep(25)", timeout=28)
    killer.join()
    assert time.monotonic() - start < 15
    assert not r.ok and not r.timed_out
    assert r.error == "container_lost" or r.exit_code == 137
    assert r.stdout == "working\n"
    assert session.run("print('next run fine')").stdout == "next run fine\n"


def test_no_engine_is_a_typed_error() -> None:
    from sandbox import BackendUnavailableError
    from sandbox.backends.docker import DockerBackendConfig

    with pytest.raises(BackendUnavailableError):
        DockerBackend(DockerBackendConfig(base_url="unix:///nonexistent/docker.sock")).ping()


def test_sandbox_gc_beside_a_live_controller_removes_only_expired_containers(
    orc: Orchestrator, session: Session, backend: DockerBackend
) -> None:
    api = docker.APIClient()
    expired = api.create_container(
        orc.image,
        command=["true"],
        labels={"sbx.managed": "1", "sbx.controller": "gone", "sbx.deadline": "1"},
    )["Id"]
    assert session.ready()
    env = {
        **os.environ,
        "SANDBOX_DATA_DIR": str(orc.settings.data_dir),
        "SANDBOX_CONTROLLER_ID": orc.settings.controller_id,
    }
    proc = subprocess.run(
        ["sandbox", "gc"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "expired" in proc.stdout
    with pytest.raises(docker.errors.NotFound):
        api.inspect_container(expired)
    assert containers_of(backend, session), "the live session's warm container must survive"


def test_each_owner_gets_one_cpu_group_of_its_own(
    orc: Orchestrator, backend: DockerBackend
) -> None:
    # Under contention each tenant gets an equal CPU share, however many boxes it runs.
    with (
        orc.session(owner="alice") as a1,
        orc.session(owner="alice") as a2,
        orc.session(owner="bob") as b,
    ):
        parents = {}
        for s in (a1, a2, b):
            assert s.ready()
            (cid,) = containers_of(backend, s)
            parents[s.id] = docker.APIClient().inspect_container(cid)["HostConfig"]["CgroupParent"]
    assert parents[a1.id] == parents[a2.id] != parents[b.id]
    assert parents[b.id].startswith("/sbx-tenants/t") and "bob" not in parents[b.id]
    # Together the groups weigh less than the control plane (the engine, the controller).
    cpu = Path("/sys/fs/cgroup/cpu/sbx-tenants")
    if cpu.is_dir():  # cgroup v1, as on our machines
        assert (cpu / "cpu.shares").read_text().strip() == "256"
