"""The README is true: every block in it runs as pasted, or is checked where it is run.

- Python blocks run in a fresh interpreter, on the real engine, in a directory holding the
  repository's `examples/`. A comment `# NAME.json: {...}` in a block stands for a file the
  reader writes first; it is written. The placeholders a reader fills in (the server's address
  and an API key, a remote MCP server's address) are filled with real ones: a `sandbox serve`
  process with a key, and the example mailer over streamable HTTP. What a block says it prints
  (`print(x)  # what`) must be printed.
- JSON blocks are MCP configurations: one that configures the `sandbox` server is loaded by
  the MCP Inspector (`--config`), which lists our tools through it over stdio or HTTP; one
  that configures upstream servers is loaded by the controller's own loader.
- Shell blocks: each command is one that CI runs itself (`.ci/run` is `scripts/test.sh`;
  tests/e2e/test_compose.py runs `scripts/up.sh`), checked here to stay so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.test_inspector import NPX
from tests.integration.test_service_process import create_key, env_for, free_port, start_serve

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SERVE_URL, API_KEY, MAILER_URL = "http://127.0.0.1:8080", "sbx_...", "http://127.0.0.1:8766/mcp"
WAIT = ["--connect-timeout", "180000"]  # npx may fetch `mcp-remote` first
# Where each shell command of the README is run for real.
SHELL = {
    "./scripts/up.sh": ("tests/e2e/test_compose.py", '["bash", "scripts/up.sh"]'),
    "./scripts/test.sh": (".ci/run", "exec bash scripts/test.sh"),
}


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    text: str


def readme_blocks() -> list[Block]:
    blocks, lines = [], README.read_text().splitlines()
    start, lang = -1, ""
    for i, line in enumerate(lines):
        if not line.startswith("```"):
            continue
        if start < 0:
            start, lang = i, line[3:].strip()
        else:
            blocks.append(Block(start + 1, lang, "\n".join(lines[start + 1 : i]) + "\n"))
            start = -1
    assert start < 0, f"README.md:{start + 1}: a block is never closed"
    return blocks


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def _of(lang: str) -> list[Block]:
    return [b for b in readme_blocks() if b.lang == lang]


def _ids(blocks: list[Block]) -> list[str]:
    return [f"README.md:{b.line}" for b in blocks]


def test_every_block_is_one_this_module_checks() -> None:
    blocks = readme_blocks()
    assert len(_of("python")) >= 4 and len(_of("json")) >= 3
    for b in blocks:
        assert b.lang in {"python", "json", "bash", ""}, f"README.md:{b.line}: {b.lang!r}"
        if b.lang == "":  # the layout: a picture of the tree, every path in it real
            for path in re.findall(r"^(\S+/|\S+\.\w+)\s", b.text, re.MULTILINE):
                assert (ROOT / path).exists(), f"README.md:{b.line}: {path} does not exist"


@pytest.mark.parametrize("block", _of("bash"), ids=_ids(_of("bash")))
def test_each_shell_command_is_run_by_ci(block: Block) -> None:
    for line in block.text.splitlines():
        command = line.split("#", 1)[0].strip()
        assert command in SHELL, f"README.md:{block.line}: nothing runs {command!r}"
        where, how = SHELL[command]
        assert how in (ROOT / where).read_text(), f"{where} no longer runs {command}"


@pytest.fixture(scope="module")
def service(make_settings) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    env = env_for(make_settings(controller_id=make_settings().controller_id + "readme"))
    proc, url = start_serve(env)
    try:
        yield url, create_key(env, owner="readme")
    finally:
        proc.terminate()
        proc.wait(60)


@pytest.fixture(scope="module")
def mailer() -> Iterator[str]:
    port = free_port()
    script = ROOT / "examples" / "mcp_servers" / "mailer.py"
    proc = subprocess.Popen([sys.executable, str(script), "--http", str(port)])
    try:
        yield MAILER_URL.replace("8766", str(port))
    finally:
        proc.terminate()
        proc.wait(30)


def _fill(text: str, service: tuple[str, str], mailer: str) -> str:
    url, key = service
    return text.replace(SERVE_URL, url).replace(API_KEY, key).replace(MAILER_URL, mailer)


def _workdir(tmp_path: Path, text: str) -> Path:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    for name, content in re.findall(r"^# ([\w.-]+\.json): (\{.*\})$", text, re.MULTILINE):
        (tmp_path / name).write_text(content)
    return tmp_path


def _promised(text: str) -> list[str]:
    """What the block says it prints: `print(...)  # what`."""
    return re.findall(r"^\s*print\(.*\)\s+# (.+)$", text, re.MULTILINE)


@pytest.mark.parametrize("block", _of("python"), ids=_ids(_of("python")))
def test_each_python_block_runs_as_pasted(
    block: Block,
    tmp_path: Path,
    make_settings,  # type: ignore[no-untyped-def]
    service: tuple[str, str],
    mailer: str,
) -> None:
    settings = make_settings()
    code = _fill(block.text, service, mailer)
    env = {
        **os.environ,
        "SANDBOX_DATA_DIR": str(tmp_path / "data"),
        "SANDBOX_CONTROLLER_ID": f"{settings.controller_id}rd{block.line}",
        "SANDBOX_IMAGE": settings.image or "",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=_workdir(tmp_path, code),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"README.md:{block.line}\n{done.stderr[-3000:]}"
    for what in _promised(block.text):
        assert what in done.stdout, f"README.md:{block.line} promised {what!r}:\n{done.stdout}"


def _sandbox_configs() -> list[Block]:
    return [b for b in _of("json") if "sandbox" in json.loads(b.text)["mcpServers"]]


@pytest.mark.parametrize("block", _sandbox_configs(), ids=_ids(_sandbox_configs()))
def test_each_mcp_client_configuration_works_in_the_inspector(
    block: Block,
    tmp_path: Path,
    make_settings,
    service: tuple[str, str],  # type: ignore[no-untyped-def]
) -> None:
    config = json.loads(_fill(block.text, service, MAILER_URL))
    server = config["mcpServers"]["sandbox"]
    if server.get("command") == "sandbox":  # a data directory of its own, on this engine
        settings = make_settings()
        server["env"] |= {
            "SANDBOX_DATA_DIR": str(tmp_path / "data"),
            "SANDBOX_CONTROLLER_ID": f"{settings.controller_id}rd{block.line}",
            "SANDBOX_IMAGE": settings.image or "",
        }
    if server.get("command") == "npx" and "NODE_EXTRA_CA_CERTS" in os.environ:
        # The Inspector starts servers with a bare environment: a machine whose registry is
        # behind its own CA must hand npm that CA, as its user's client would.
        server["env"]["NODE_EXTRA_CA_CERTS"] = os.environ["NODE_EXTRA_CA_CERTS"]
    (tmp_path / "mcp.json").write_text(json.dumps(config))
    done = subprocess.run(
        [*NPX, "--config", "mcp.json", "--server", "sandbox", *WAIT, "--method", "tools/list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0 and ("ENOTFOUND" in done.stderr or "E404" in done.stderr):
        _unavailable(f"the Inspector could not be fetched: {done.stderr[-300:]}")
    assert done.returncode == 0, f"README.md:{block.line}\n{done.stderr[-3000:]}"
    tools = {t["name"] for t in json.loads(done.stdout)["tools"]}
    assert {"execute_code", "read_file", "list_files", "open_session"} <= tools


def _upstream_configs() -> list[Block]:
    return [b for b in _of("json") if "sandbox" not in json.loads(b.text)["mcpServers"]]


@pytest.mark.parametrize("block", _upstream_configs(), ids=_ids(_upstream_configs()))
def test_each_upstream_configuration_loads(block: Block) -> None:
    from sandbox.bridge.config import load_config

    data = json.loads(block.text)
    config = load_config(data)
    assert set(config.servers) == set(data["mcpServers"])
    assert set(config.owners) == set(data.get("owners", {}))
    for name, spec in data["mcpServers"].items():  # no key the loader would pass over
        assert set(spec) <= set(type(config.servers[name]).model_fields) | {"type"}, name
