"""`docker compose up` smoke test: the README's main job, one execution through the API, torn down."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
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


def created_container_labels(session_id: str, since: int) -> list[dict[str, str]]:
    """The labels of every sandbox container created for a session, from the engine's events
    (they carry the labels a container got, its image's included, even once it is removed)."""
    out = subprocess.run(
        [
            "docker",
            "events",
            "--since",
            str(since),
            "--until",
            str(int(time.time()) + 1),
            "--filter",
            "type=container",
            "--filter",
            "event=create",
            "--filter",
            f"label=sbx.session={session_id}",
            "--format",
            "{{json .Actor.Attributes}}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


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
        since = int(time.time()) - 1
        with Client(f"http://127.0.0.1:{port}", key.group()) as c, c.session() as s:
            session_id = s.id
            r = s.run("import os; print(6 * 7, os.getuid())")
            assert (r.stdout, r.exit_code) == ("42 1000\n", 0)
            s.upload("in.txt", b"hello")
            assert s.run("print(open('in.txt').read())").stdout == "hello\n"
        # Sandboxes carry our labels and their image's, never compose's: compose does not
        # build the sandbox image, so `compose down` cannot mistake a sandbox for its own.
        created = created_container_labels(session_id, since)
        assert created, "no sandbox container was created for the session"
        for labels in created:
            assert labels.get("sbx.controller") == "compose" and labels.get("sbx.image") == "1"
            assert not [k for k in labels if k.startswith("com.docker.compose")], labels
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
    for label in (f"com.docker.compose.project=sbxsmoke{port}", f"sbx.session={session_id}"):
        left = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={label}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert left == [], label
