"""`sandbox serve` and the `sandbox keys` commands as real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

from sandbox.backends.base import LABEL_CONTROLLER, LABEL_MANAGED
from sandbox.client import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        **os.environ,
        "SANDBOX_DATA_DIR": str(settings.data_dir),
        "SANDBOX_CONTROLLER_ID": settings.controller_id,
        "SANDBOX_IMAGE": settings.image or "",
    }


def create_key(env: dict[str, str], owner: str = "alice") -> str:
    done = subprocess.run(
        ["sandbox", "keys", "create", "--owner", owner],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def start_serve(
    env: dict[str, str], stderr: int = subprocess.DEVNULL, ready: bool = True
) -> tuple[subprocess.Popen[bytes], str]:
    """`sandbox serve` on a free port, once /healthz says 200 (or, unless `ready`, anything)."""
    port = free_port()
    proc = subprocess.Popen(
        ["sandbox", "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=stderr
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200 or not ready:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return proc, url


def test_keys_are_created_listed_and_revoked_from_the_cli(make_settings) -> None:  # type: ignore[no-untyped-def]
    env = env_for(make_settings())
    created = subprocess.run(
        ["sandbox", "keys", "create", "--owner", "alice"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip()
    assert key.startswith("sbx_") and "not shown again" in created.stderr
    key_id = key.split("_")[1]
    listed = subprocess.run(
        ["sandbox", "keys", "list"], env=env, capture_output=True, text=True, check=True
    )
    assert key_id in listed.stdout and "alice" in listed.stdout and key not in listed.stdout
    subprocess.run(["sandbox", "keys", "revoke", key_id], env=env, check=True, capture_output=True)
    assert (
        "REVOKED"
        in subprocess.run(
            ["sandbox", "keys", "list"], env=env, capture_output=True, text=True
        ).stdout
    )
    bad = subprocess.run(
        ["sandbox", "keys", "create", "--owner", "../x"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "owner must match" in bad.stderr


def test_sigterm_lets_the_running_execution_finish_and_leaves_no_container(
    make_settings, backend
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(controller_id=make_settings().controller_id + "g")
    env = env_for(settings)
    key = create_key(env)
    proc, url = start_serve(env, stderr=subprocess.PIPE)
    results: list[object] = []
    with Client(url, key) as c:
        s = c.session()
        t = threading.Thread(
            target=lambda: results.append(
                s.run("import time\nprint('started', flush=True)\ntime.sleep(2)\nprint('finished')")
            )
        )
        t.start()
        time.sleep(0.8)
        proc.send_signal(signal.SIGTERM)
        t.join(60)
    # uvicorn shuts down, then re-raises SIGTERM so the exit status says how it ended.
    assert proc.wait(60) in (0, -signal.SIGTERM)
    assert proc.stderr is not None and b"Application shutdown complete" in proc.stderr.read()
    assert results and results[0].stdout == "started\nfinished\n"  # type: ignore[attr-defined]
    left = backend.list_managed({LABEL_MANAGED: "1", LABEL_CONTROLLER: settings.controller_id})
    assert left == []


def test_audit_verify_passes_a_real_trail_and_names_tampering(make_settings) -> None:  # type: ignore[no-untyped-def]
    from sandbox import Orchestrator

    settings = make_settings(controller_id=make_settings().controller_id + "v")
    with Orchestrator(settings) as orc, orc.session(owner="alice") as s:
        s.run("print(1)")
    env = env_for(settings)
    subprocess.run(
        ["sandbox", "keys", "create", "--owner", "bob"], env=env, check=True, capture_output=True
    )
    ok = subprocess.run(["sandbox", "audit", "verify"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "intact" in ok.stdout
    log = settings.data_dir / "audit.log"
    events = [line for line in log.read_text().splitlines()]
    assert any('"event":"key_created"' in e for e in events) and any(
        '"event":"run_end"' in e for e in events
    )
    log.write_text(
        "\n".join(e.replace('"owner":"alice"', '"owner":"mallory"', 1) for e in events) + "\n"
    )
    bad = subprocess.run(
        ["sandbox", "audit", "verify", str(log)], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "MAC mismatch" in bad.stdout and "NOT intact" in bad.stdout


def test_serve_without_an_engine_stays_up_and_says_503(make_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**env_for(make_settings()), "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    env.pop("SANDBOX_DOCKER_HOST", None)
    key = create_key(env)
    proc, url = start_serve(env, ready=False)
    try:
        health = httpx.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 503 and health.json()["status"] == "starting"
        r = httpx.post(f"{url}/v1/sessions", json={}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "starting"
        time.sleep(2)
        assert proc.poll() is None, "the server exited instead of waiting for the engine"
    finally:
        proc.terminate()
        proc.wait(30)


def test_doctor_passes_here_and_says_how_to_fix_a_missing_engine(make_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = env_for(make_settings())
    ok = subprocess.run(["sandbox", "doctor"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and "ok   Docker engine at " in ok.stdout, ok.stdout
    broken = subprocess.run(
        ["sandbox", "doctor"],
        env={**env, "DOCKER_HOST": f"unix://{tmp_path}/none.sock"},
        capture_output=True,
        text=True,
    )
    assert (
        broken.returncode == 1
        and f"FAIL Docker engine at unix://{tmp_path}/none.sock" in broken.stdout
        and "fix:" in broken.stdout
    )


def test_a_header_that_never_ends_is_refused_not_held(make_settings) -> None:  # type: ignore[no-untyped-def]
    proc, url = start_serve(env_for(make_settings()))
    try:
        host, port = url.removeprefix("http://").split(":")

        def rss_kib() -> int:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            return int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])

        before = rss_kib()
        sent = 0
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            try:
                for _ in range(200):  # 50 MiB of one header line
                    s.sendall(b"a" * 256 * 1024)
                    sent += 256 * 1024
            except OSError:
                pass  # refused and closed: what should happen
        assert sent < 50 * 1024 * 1024 or rss_kib() - before < 16 * 1024
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
