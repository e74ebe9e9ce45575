"""The run channel and the in-container runtime, run as a host process (no Docker needed)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.channel import SOCKET_NAME, RunChannel
from sandbox.exceptions import ContainerStartError

RUNTIME = Path(__file__).parents[2] / "sandbox" / "runtime" / "sbxrt.py"


@pytest.fixture
def channel(tmp_path: Path) -> Iterator[RunChannel]:
    ch = RunChannel(tmp_path, os.getuid(), os.getgid())
    yield ch
    ch.close()


def start_runtime(channel: RunChannel, dial: Path | None = None) -> subprocess.Popen[bytes]:
    env = {"SBX_SOCKET": str(dial or channel.dir / SOCKET_NAME), "PATH": os.environ["PATH"]}
    proc = subprocess.Popen([sys.executable, "-I", str(RUNTIME)], env=env)
    channel.accept_runtime(time.monotonic() + 10)
    return proc


def run(
    channel: RunChannel,
    code: str,
    cwd: Path,
    timeout: float = 10,
    cap: int = 1 << 20,
    env: dict[str, str] | None = None,
    dial: Path | None = None,
):  # type: ignore[no-untyped-def]
    proc = start_runtime(channel, dial)
    try:
        channel.deliver(code, env or {}, str(cwd), "tok")
        return channel.collect(time.monotonic() + timeout, cap, lambda body, reply: None)
    finally:
        channel.close()
        proc.kill()
        proc.wait()


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
