"""The official MCP Inspector CLI against `sandbox mcp` over stdio: the tool schemas pass its
`--strict` portability check in both result forms, and a 3 MB flood comes back once, within
the output budget. Over streamable HTTP against `sandbox serve` with a key: the same listing,
a run and the flood; a wrong key ends in our own 401 message, with no OAuth discovery. The
servers run on the local-process backend (no engine needed).

Needs npx; current Inspector releases need Node 22, which the npm package `node` provides
(`npx -p node@22 ...`). Skipped when npx is missing or the packages cannot be fetched
(offline), unless CI=true.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.local_serve import OFFLINE, SANDBOX, Served, local_env, unavailable

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
NPX = ["npx", "-y", "-p", "node@22", "-p", INSPECTOR, "mcp-inspector", "--cli"]


def npx_inspector(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("npx") is None:
        unavailable("npx is not installed")
    done = subprocess.run([*NPX, *args], capture_output=True, text=True, timeout=600, cwd=cwd)
    if done.returncode != 0 and any(e in done.stderr for e in OFFLINE):
        unavailable(f"the Inspector could not be fetched: {done.stderr[-300:]}")
    return done


def inspector(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The Inspector against a `sandbox mcp` stdio server it starts."""
    server_env = {**local_env(tmp_path / "data", "inspector"), **env}
    flags = [arg for k, v in server_env.items() for arg in ("-e", f"{k}={v}")]
    return npx_inspector(tmp_path, *args, *flags, "--", *SANDBOX, "mcp", "--owner", "i")


def over_http(
    served: Served, tmp_path: Path, key: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """The Inspector against `sandbox serve`'s /mcp with `key`; never an interactive sign-in."""
    auth = ["--header", f"Authorization: Bearer {key}", "--stored-auth-only"]
    return npx_inspector(tmp_path, f"{served.url}/mcp", "--transport", "http", *auth, *args)


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


@pytest.fixture(scope="module")
def http_key(local_server: Served) -> str:
    return local_server.key("inspector-http")


def test_over_http_the_inspector_lists_the_tools_and_runs_code(
    local_server: Served, http_key: str, tmp_path: Path
) -> None:
    listed = over_http(local_server, tmp_path, http_key, "--strict", "--method", "tools/list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "portability" not in listed.stderr
    tools = {t["name"] for t in json.loads(listed.stdout)["tools"]}
    assert {"execute_code", "read_file", "list_files"} <= tools
    args = ["--method", "tools/call", "--tool-name", "execute_code"]
    ran = over_http(local_server, tmp_path, http_key, *args, "--tool-arg", "code=print(6 * 7)")
    assert ran.returncode == 0, ran.stderr[-2000:]
    result = json.loads(ran.stdout)
    assert not result["isError"] and result["content"][0]["text"].endswith("stdout ---\n42")


def test_over_http_a_flood_comes_back_once_within_the_budget(
    local_server: Served, http_key: str, tmp_path: Path
) -> None:
    args = ["--method", "tools/call", "--tool-name", "execute_code"]
    code = "code=print('z' * 3_000_000)"
    done = over_http(local_server, tmp_path, http_key, *args, "--tool-arg", code)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert [c["type"] for c in result["content"]] == ["text"]
    text = result["content"][0]["text"]
    assert len(text) < 20_500 and "of stdout left out; the whole stdout is in /workspace/" in text


def test_over_http_a_wrong_key_ends_in_our_401_with_no_oauth_discovery(
    local_server: Served, tmp_path: Path
) -> None:
    before = len(local_server.requests())
    wrong = "sbx_000000000000_" + "A" * 43
    done = over_http(local_server, tmp_path, wrong, "--method", "tools/list")
    assert done.returncode != 0
    error = json.loads(done.stderr.splitlines()[-1])["error"]
    assert error["code"] == "auth_required"
    assert "unauthorized: the API key was not accepted" in error["message"]
    seen = local_server.requests()[before:]
    assert seen and all('"POST /mcp HTTP/1.1" 401' in line for line in seen), seen
