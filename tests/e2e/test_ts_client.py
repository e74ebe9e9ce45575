"""A client on the official TypeScript SDK (tests/e2e/ts/client.mjs, `@modelcontextprotocol/sdk`
pinned in its package-lock.json) against `sandbox mcp` over stdio and `sandbox serve`'s /mcp
over streamable HTTP: it lists the tools, runs code, gets a 3 MB flood back within the
output budget, cancels a run once it has started (the server kills it: `cancelled` on the
audit trail) and runs again on the same connection; a wrong key is refused with a 401
`invalid_token` and nothing else is tried. Both servers run on the local-process backend.

The packages are installed with `npm ci` into a temporary directory (npm keeps its own
download cache). Skipped when node/npm are missing or the registry cannot be reached, unless
CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.local_serve import (
    OFFLINE,
    SANDBOX,
    Served,
    audit_outcomes,
    local_env,
    unavailable,
)
from tests.polling import wait_until

HERE = Path(__file__).parent / "ts"
# The outcomes of the runs the script makes, in order: print, flood, the cancelled one, print.
OUTCOMES = ["ok", "ok", "cancelled", "ok"]


def node_major() -> int:
    done = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    return int(done.stdout.strip().lstrip("v").split(".")[0])


@pytest.fixture(scope="session")
def ts_client(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command that runs client.mjs, its packages installed from the lock file."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        unavailable("node and npm are not installed")
    work = tmp_path_factory.mktemp("ts-client")
    for name in ("package.json", "package-lock.json", "client.mjs"):
        shutil.copy(HERE / name, work / name)
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0 and any(e in done.stderr for e in OFFLINE):
        unavailable(f"npm could not fetch the TypeScript SDK: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    # The SDK's dependencies need Node 20; an older node gets 22 from the npm package `node`.
    node = ["node"] if node_major() >= 20 else ["npx", "-y", "-p", "node@22", "node"]
    return [*node, str(work / "client.mjs")]


def run_client(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    results: dict[str, Any] = json.loads(done.stdout)
    return results


def check_session(results: dict[str, Any]) -> None:
    """What every transport must have done; each step is its result or {"error": ...}."""
    assert "error" not in results["connect"], results["connect"]
    assert {"execute_code", "read_file", "list_files"} <= set(results["tools"]), results["tools"]
    run = results["run"]
    assert len(run) == 1 and run[0].endswith("--- stdout ---\n42"), run

    flood = results["flood"]
    assert flood["types"] == ["text"] and not flood["structured"], flood.get("error", flood)
    (text,) = flood["texts"]
    assert len(text) < 20_500 and "of stdout left out; the whole stdout is in /workspace/" in text
    assert flood["logged"]["chars"] < 25_000  # the notifications on the way are bounded too

    cancel = results["cancel"]
    assert cancel["rejected"], cancel
    assert "started" in (cancel["progress"] or ""), cancel  # it was running when aborted
    assert "the test cancels" in cancel["error"], cancel
    assert len(results["after"]) == 1 and results["after"][0].endswith("--- stdout ---\n5")


def test_the_ts_sdk_client_works_over_stdio(ts_client: list[str], tmp_path: Path) -> None:
    settings = local_env(tmp_path / "data", "ts-e2e")
    server = [*SANDBOX, "mcp", "--owner", "ts"]
    results = run_client([*ts_client, "stdio", "--", *server], {**os.environ, **settings})
    check_session(results)
    trail = tmp_path / "data" / "mcp" / "1" / "audit.log"  # slot 1's (sandbox/mcp/stdio.py)
    assert wait_until(lambda: len(audit_outcomes(trail, "ts")) == len(OUTCOMES))
    assert audit_outcomes(trail, "ts") == OUTCOMES


@pytest.fixture(scope="module")
def over_http(ts_client: list[str], local_server: Served) -> dict[str, Any]:
    """The script's results against `sandbox serve`, run once for the tests below."""
    env = {**os.environ, "SANDBOX_API_KEY": local_server.key("ts-http")}
    return run_client([*ts_client, "http", f"{local_server.url}/mcp"], env)


def test_the_ts_sdk_client_works_over_streamable_http(
    over_http: dict[str, Any], local_server: Served
) -> None:
    assert over_http["connect"].get("protocol"), over_http["connect"]
    check_session(over_http)
    assert wait_until(lambda: len(audit_outcomes(local_server.audit, "ts-http")) == len(OUTCOMES))
    assert audit_outcomes(local_server.audit, "ts-http") == OUTCOMES


def test_a_wrong_key_is_refused_with_a_401_and_no_oauth_to_discover(
    over_http: dict[str, Any],
) -> None:
    wrong = over_http["wrongKey"]
    assert not wrong["connected"] and wrong["code"] == 401, wrong
    assert "the API key was not accepted" in wrong["error"]
    # One POST, answered 401 invalid_token with no resource metadata; no discovery follows.
    fetched = wrong["fetched"]
    assert [(r["method"], r["status"]) for r in fetched] == [("POST", 401)], fetched
    challenge = fetched[0]["wwwAuthenticate"]
    assert challenge.startswith('Bearer error="invalid_token"'), challenge
    assert "resource_metadata" not in challenge
