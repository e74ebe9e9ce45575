"""`docker compose up` smoke test: the README's main job, one execution through the API, torn down."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from sandbox.client import Client

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.docker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_compose_up_serves_a_run_and_tears_down(tmp_path: Path, backend) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = {
        **os.environ,
        "SANDBOX_PORT": str(port),
        "SANDBOX_DATA_DIR": str(tmp_path / "data"),
        "COMPOSE_PROJECT_NAME": f"sbxsmoke{port}",
    }
    try:
        up = subprocess.run(
            ["bash", "scripts/up.sh"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        key = re.search(r"sbx_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", up.stdout)
        assert key, up.stdout[-2000:]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["status"] == "ok"
        with Client(f"http://127.0.0.1:{port}", key.group()) as c, c.session() as s:
            r = s.run("import os; print(6 * 7, os.getuid())")
            assert (r.stdout, r.exit_code) == ("42 1000\n", 0)
            s.upload("in.txt", b"hello")
            assert s.run("print(open('in.txt').read())").stdout == "hello\n"
        # Skills, keys and the audit log persist in the data directory.
        assert (tmp_path / "data" / "keys.json").exists()
    finally:
        down = subprocess.run(
            ["bash", "scripts/up.sh", "down"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert down.returncode == 0, down.stderr[-2000:]
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project=sbxsmoke{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert left == []
