"""The official MCP Inspector CLI against `sandbox mcp` over stdio: the tool schemas pass its
`--strict` portability check in both result forms, and a 3 MB flood comes back once, within
the output budget. The server runs on the local-process backend (no engine needed).

Needs npx; current Inspector releases need Node 22, which the npm package `node` provides
(`npx -p node@22 ...`). Skipped when npx is missing or the packages cannot be fetched
(offline), unless CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
NPX = ["npx", "-y", "-p", "node@22", "-p", INSPECTOR, "mcp-inspector", "--cli"]


def inspector(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("npx") is None:
        _unavailable("npx is not installed")
    server_env = {
        "SANDBOX_DATA_DIR": str(tmp_path / "data"),
        "SANDBOX_CONTROLLER_ID": "inspector" + os.urandom(3).hex(),
        "SANDBOX_BACKEND__TYPE": "local",
        "SANDBOX_BACKEND__UNSAFE_NO_ISOLATION": "true",
        "SANDBOX_WORKSPACE_BACKING": "directory",
        **env,
    }
    flags = [arg for k, v in server_env.items() for arg in ("-e", f"{k}={v}")]
    server = [sys.executable, "-c", "from sandbox.cli import main; main()", "mcp", "--owner", "i"]
    cmd = [*NPX, *args, *flags, "--", *server]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    if done.returncode != 0 and ("ENOTFOUND" in done.stderr or "E404" in done.stderr):
        _unavailable(f"the Inspector could not be fetched: {done.stderr[-300:]}")
    return done


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


@pytest.mark.parametrize("structured", ["false", "true"])
def test_the_tool_schemas_pass_the_inspectors_strict_check(tmp_path: Path, structured: str) -> None:
    done = inspector(
        tmp_path, "--strict", "--method", "tools/list", SANDBOX_OUTPUT__MCP_STRUCTURED=structured
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "portability" not in done.stderr
    tools = {t["name"]: t for t in json.loads(done.stdout)["tools"]}
    assert {"execute_code", "read_file", "list_files"} <= set(tools)
    assert all(t.get("title") and t.get("annotations") for t in tools.values())
    assert all(bool(t.get("outputSchema")) == (structured == "true") for t in tools.values())


def test_a_flood_comes_back_once_within_the_budget(tmp_path: Path) -> None:
    args = ["--method", "tools/call", "--tool-name", "execute_code"]
    done = inspector(tmp_path, *args, "--tool-arg", "code=print('z' * 3_000_000)")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert "structuredContent" not in result and [c["type"] for c in result["content"]] == ["text"]
    text = result["content"][0]["text"]
    assert len(text) < 20_500 and "of stdout left out; the whole stdout is in /workspace/" in text
