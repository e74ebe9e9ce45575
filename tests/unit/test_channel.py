"""The run channel and the in-container runtime, run as a host process (no Docker needed)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.channel import SOCKET_NAME, CallHandler, Collected, RunChannel, response_frame
from sandbox.exceptions import ContainerStartError

RUNTIME = Path(__file__).parents[2] / "sandbox" / "runtime" / "sbxrt.py"


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[RunChannel]:
    ch = RunChannel(tmp_path, os.getuid(), os.getgid())
    yield ch
    ch.close()


def start_runtime(
    channel: RunChannel, dial: Path | None = None, root: Path | None = None
) -> subprocess.Popen[bytes]:
    env = {"SBX_SOCKET": str(dial or channel.dir / SOCKET_NAME), "PATH": os.environ["PATH"]}
    if root is not None:
        env["SBX_ROOT"] = str(root)
    proc = subprocess.Popen([sys.executable, "-I", str(RUNTIME)], env=env)
    channel.accept_runtime(time.monotonic() + 10)
    return proc


def run(
    channel: RunChannel,
    code: str,
    cwd: Path | str,
    timeout: float = 10,
    cap: int = 1 << 20,
    env: dict[str, str] | None = None,
    dial: Path | None = None,
    root: Path | None = None,
    on_call: CallHandler = lambda body, reply: None,
    max_call_bytes: int | None = None,
) -> Collected:
    proc = start_runtime(channel, dial, root)
    try:
        if max_call_bytes is None:
            channel.deliver(code, env or {}, str(cwd), "tok")
        else:
            channel.deliver(code, env or {}, str(cwd), "tok", max_call_bytes=max_call_bytes)
        return channel.collect(time.monotonic() + timeout, cap, on_call)
    finally:
        channel.close()
        proc.kill()
        proc.wait()


def echo_tool(calls: list[dict[str, object]]) -> CallHandler:
    """A tool bridge stand-in: records each call and answers with its args."""

    def on_call(body: bytes, reply: Callable[[bytes], None]) -> None:
        call = json.loads(body)
        calls.append(call)
        reply(response_frame(call["id"], {"ok": True, "result": call["args"]}))

    return on_call


@pytest.fixture
def box_root(tmp_path: Path) -> Path:
    """A stand-in for the box's file system, as SBX_ROOT sees it."""
    root = tmp_path / "root"
    (root / "workspace").mkdir(parents=True)
    (root / "servers").mkdir()
    (root / "servers" / "__init__.py").write_text("NAME = 'generated'\n")
    return root


def test_stdout_stderr_and_exit_code_come_back(channel: RunChannel, tmp_path: Path) -> None:
    got = run(
        channel, "import sys; print('out'); print('err', file=sys.stderr); sys.exit(7)", tmp_path
    )
    assert (got.stdout, got.stderr, got.exit_code) == (b"out\n", b"err\n", 7)
    assert not got.timed_out and not got.truncated


def test_env_and_cwd_reach_the_code(channel: RunChannel, tmp_path: Path) -> None:
    got = run(channel, "import os; print(os.environ['A'], os.getcwd())", tmp_path, env={"A": "x=y"})
    assert got.stdout == f"x=y {tmp_path}\n".encode()


def test_an_exception_gives_exit_1_and_a_traceback_without_runtime_frames(
    channel: RunChannel, tmp_path: Path
) -> None:
    got = run(channel, "raise KeyError('k')", tmp_path)
    assert got.exit_code == 1
    assert b"KeyError" in got.stderr and b"sbxrt" not in got.stderr


def test_functions_defined_by_the_code_live_in_a_fresh_main_module(
    channel: RunChannel, tmp_path: Path
) -> None:
    got = run(
        channel,
        "import __main__, pickle\ndef f(): pass\nprint(pickle.loads(pickle.dumps(f)) is f, hasattr(__main__, 'main'))",
        tmp_path,
    )
    assert got.stdout == b"True False\n"


def test_output_beyond_the_cap_is_dropped_and_flagged(channel: RunChannel, tmp_path: Path) -> None:
    got = run(
        channel,
        "import sys\nfor _ in range(2000): sys.stdout.write('x' * 1000)\nprint('done', file=sys.stderr)",
        tmp_path,
        cap=4096,
    )
    assert got.stdout == b"x" * 4096
    assert got.truncated and got.exit_code == 0 and got.stderr == b"done\n"


def test_a_run_past_its_deadline_is_reported_as_timed_out_with_partial_output(
    channel: RunChannel, tmp_path: Path
) -> None:
    got = run(
        channel, "import time; print('early', flush=True); time.sleep(30)", tmp_path, timeout=0.5
    )
    assert got.timed_out and got.exit_code is None and got.stdout == b"early\n"


def test_runtime_killed_by_its_code_reports_no_exit_code(
    channel: RunChannel, tmp_path: Path
) -> None:
    got = run(channel, "import os; print('bye', flush=True); os._exit(4)", tmp_path)
    assert got.exit_code is None and got.stdout == b"bye\n" and not got.timed_out


def test_a_forged_exit_line_is_not_believed(channel: RunChannel, tmp_path: Path) -> None:
    # User code can write to the control socket; a malformed report is dropped, not parsed.
    got = run(
        channel,
        "import os\nfor fd in range(3, 10):\n    try: os.write(fd, b'EXIT 99999999999\\n')\n    except OSError: pass\nos._exit(0)",
        tmp_path,
    )
    assert got.exit_code is None


def test_the_listener_is_gone_once_the_runtime_is_in(channel: RunChannel) -> None:
    proc = start_runtime(channel)
    try:
        assert not (channel.dir / SOCKET_NAME).exists()
        s = socket.socket(socket.AF_UNIX)
        with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
            s.connect(str(channel.dir / SOCKET_NAME))
        s.close()
    finally:
        channel.close()
        proc.kill()
        proc.wait()


def test_a_deep_runs_folder_still_gets_a_working_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    ch = RunChannel(deep, os.getuid(), os.getgid())
    assert len(str(ch.dir / SOCKET_NAME)) > 108
    # In a container the runtime dials the short /run/sbx/sbx.sock of its bind mount; a short
    # symlink to the folder stands in for that here.
    (tmp_path / "m").symlink_to(ch.dir)
    try:
        got = run(ch, "print('deep')", tmp_path, dial=tmp_path / "m" / SOCKET_NAME)
    finally:
        ch.close()
    assert got.stdout == b"deep\n"


def test_a_bad_handshake_fails_the_start(channel: RunChannel) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(channel.dir / SOCKET_NAME))
    s.sendall(b"Z")
    with pytest.raises(ContainerStartError):
        channel.accept_runtime(time.monotonic() + 2)
    s.close()


def test_no_runtime_means_a_start_error_at_the_deadline(channel: RunChannel) -> None:
    with pytest.raises(ContainerStartError):
        channel.accept_runtime(time.monotonic() + 0.2)


def test_delivering_to_a_dead_runtime_is_a_start_error(channel: RunChannel, tmp_path: Path) -> None:
    proc = start_runtime(channel)
    proc.kill()
    proc.wait()

    def deliver_until_refused() -> None:
        for _ in range(50):  # the first send may still fit the dead peer's buffer
            channel.deliver("print(1)" * 100_000, {}, str(tmp_path))

    with pytest.raises(ContainerStartError):
        deliver_until_refused()


def test_box_paths_are_taken_under_sbx_root(channel: RunChannel, box_root: Path) -> None:
    got = run(
        channel,
        "import os, servers; print(os.getcwd()); print(servers.NAME)",
        "/workspace",
        root=box_root,
    )
    assert got.stdout == f"{box_root / 'workspace'}\ngenerated\n".encode(), got.stderr


def test_the_runtime_does_not_expose_its_protocol_module_to_user_code(
    channel: RunChannel, tmp_path: Path
) -> None:
    got = run(
        channel,
        "import sys\nprint(any('protocol' in m for m in sys.modules))\nimport protocol",
        tmp_path,
    )
    assert got.stdout == b"False\n" and b"ModuleNotFoundError" in got.stderr


def test_a_call_within_the_delivered_cap_is_served(channel: RunChannel, box_root: Path) -> None:
    calls: list[dict[str, object]] = []
    got = run(
        channel,
        "import sandbox_tools\nprint(sandbox_tools.call_tool('s', 't', {'x': 'a' * 1000}) == {'x': 'a' * 1000})",
        "/workspace",
        root=box_root,
        on_call=echo_tool(calls),
        max_call_bytes=2048,
    )
    assert got.stdout == b"True\n", got.stderr
    assert [(c["server"], c["tool"], c["token"]) for c in calls] == [("s", "t", "tok")]


def test_the_runtime_refuses_a_call_over_the_delivered_cap_without_sending_it(
    channel: RunChannel, box_root: Path
) -> None:
    calls: list[dict[str, object]] = []
    code = """
import sandbox_tools
try:
    sandbox_tools.call_tool('s', 't', {'x': 'a' * 2100})
except sandbox_tools.ToolInputError as exc:
    print(exc.code)
print(sandbox_tools.call_tool('s', 't', {'x': 'small'}))
"""
    got = run(
        channel,
        code,
        "/workspace",
        root=box_root,
        on_call=echo_tool(calls),
        max_call_bytes=2048,
    )
    # The control stream is still open: the second call was served and the exit reported.
    assert got.stdout == b"too_large\n{'x': 'small'}\n", got.stderr
    assert got.exit_code == 0
    assert [c["args"] for c in calls] == [{"x": "small"}]


def test_the_host_enforces_the_delivered_cap_on_a_forged_call(
    channel: RunChannel, tmp_path: Path
) -> None:
    # Code that bypasses the runtime's check gets the control stream closed on it.
    calls: list[dict[str, object]] = []
    code = (
        "import sandbox_tools\n"
        "sandbox_tools._state['ctl'].sendall(b'CALL 3000\\n' + b'{' * 3000)\n"
        "print('sent', flush=True)"
    )
    got = run(channel, code, tmp_path, on_call=echo_tool(calls), max_call_bytes=2048, timeout=3)
    assert got.stdout == b"sent\n" and calls == [] and got.exit_code is None
