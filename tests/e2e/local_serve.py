"""What the real-client tests share: `sandbox` processes on the local-process backend (no
engine needed; each with its own controller id and data directory), keys from
`sandbox keys create`, the audit trail they leave, and skipping when npm cannot be reached."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

SANDBOX = [sys.executable, "-c", "from sandbox.cli import main; main()"]
OFFLINE = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "E404")  # npm's fetch errors


def unavailable(why: str) -> None:
    """Skip, or fail when CI=true: CI must run the real clients."""
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def local_env(data_dir: Path, prefix: str) -> dict[str, str]:
    """The settings of a `sandbox` process on the local backend, with its own controller id."""
    return {
        "SANDBOX_DATA_DIR": str(data_dir),
        "SANDBOX_CONTROLLER_ID": prefix + os.urandom(3).hex(),
        "SANDBOX_BACKEND__TYPE": "local",
        "SANDBOX_BACKEND__UNSAFE_NO_ISOLATION": "true",
        "SANDBOX_WORKSPACE_BACKING": "directory",
    }


def audit_outcomes(trail: Path, owner: str) -> list[str]:
    """The outcomes of the owner's runs, oldest first, from an audit log's JSON lines."""
    if not trail.exists():
        return []
    records = [json.loads(line) for line in trail.read_text().splitlines() if line.strip()]
    return [r["outcome"] for r in records if r["event"] == "run_end" and r.get("owner") == owner]


@dataclass
class Served:
    url: str
    env: dict[str, str]
    log: Path

    @property
    def audit(self) -> Path:
        return Path(self.env["SANDBOX_DATA_DIR"]) / "audit.log"

    def key(self, owner: str) -> str:
        done = subprocess.run(
            [*SANDBOX, "keys", "create", "--owner", owner],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def requests(self) -> list[str]:
        """uvicorn's access log so far: '"POST /mcp HTTP/1.1" 401' and so on."""
        return [line for line in self.log.read_text().splitlines() if "HTTP/1.1" in line]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def serve_local(base: Path) -> Iterator[Served]:
    """`sandbox serve` as a real process (uvicorn, MCP at /mcp) on a free port, once healthy."""
    env = {**os.environ, **local_env(base / "data", "e2e")}
    port, log = _free_port(), base / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*SANDBOX, "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    url, pause = f"http://127.0.0.1:{port}", threading.Event()
    try:
        for _ in range(600):  # a bounded wait: 60 s
            if _healthy(url) or proc.poll() is not None:
                break
            pause.wait(0.1)
        assert _healthy(url), f"sandbox serve did not come up: {log.read_text()[-2000:]}"
        yield Served(url, env, log)
    finally:
        proc.terminate()  # SIGTERM: the server removes its boxes on the way out
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
