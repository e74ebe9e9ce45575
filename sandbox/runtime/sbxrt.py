"""In-container runtime: dial the run's socket, wait for code, run it once, report, wait to be killed.

Protocol (all over the one Unix socket the controller bind-mounts at /run/sbx/sbx.sock):
  1. three connections, each opened by sending one tag byte: b"C" control, b"O" stdout, b"E" stderr;
  2. on control, the controller sends  b"RUN <code_len> <env_len> <cwd_len>\\n" + code + env + cwd,
     env being NUL-separated KEY=VALUE items (all UTF-8);
  3. the code runs in this process with fd 1 and 2 on the stdout and stderr connections;
  4. the runtime sends b"EXIT <n>\\n" on control and blocks until the controller closes it.

This file runs with the same uid as the user's code, which can kill or impersonate it, so the
controller trusts nothing it says: every limit is enforced on the host.
"""

import os
import socket
import sys

SOCKET_PATH = os.environ.get("SBX_SOCKET", "/run/sbx/sbx.sock")
MAX_HEADER = 128


def _dial(tag: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(SOCKET_PATH)
    sock.sendall(tag)
    return sock


def _read_exact(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise EOFError("controller closed the channel")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_request(ctl: socket.socket) -> tuple[str, dict[str, str], str]:
    header = b""
    while not header.endswith(b"\n"):
        byte = ctl.recv(1)
        if not byte or len(header) > MAX_HEADER:
            raise EOFError("bad header")
        header += byte
    verb, code_len, env_len, cwd_len = header.split()
    if verb != b"RUN":
        raise EOFError("bad verb")
    code = _read_exact(ctl, int(code_len)).decode("utf-8")
    env_raw = _read_exact(ctl, int(env_len)).decode("utf-8")
    cwd = _read_exact(ctl, int(cwd_len)).decode("utf-8")
    env = dict(item.split("=", 1) for item in env_raw.split("\0") if item)
    return code, env, cwd


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run(code: str, env: dict[str, str], cwd: str) -> int:
    import types

    os.environ.update(env)
    os.chdir(cwd)
    sys.path.insert(0, cwd)
    sys.argv = ["-c"]
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    try:
        exec(compile(code, "<sandbox>", "exec"), main.__dict__)  # noqa: S102 - running it is the job
        return 0
    except SystemExit as exc:
        return _exit_code(exc)
    except BaseException as exc:  # noqa: BLE001 - any failure of user code is reported as exit 1
        import traceback

        # Skip this module's own frame: the user sees only their code.
        tb = exc.__traceback__
        traceback.print_exception(type(exc), exc, tb.tb_next if tb else None)
        return 1


def main() -> None:
    ctl = _dial(b"C")
    out = _dial(b"O")
    err = _dial(b"E")
    code, env, cwd = _read_request(ctl)
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    out.close()
    err.close()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a TextIOWrapper here
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a TextIOWrapper here
    rc = _run(code, env, cwd)
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib would be one more import on the start path
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        ctl.sendall(b"EXIT %d\n" % rc)
        ctl.recv(1)  # the controller kills the container once it has read the result
    except OSError:
        pass
    os._exit(rc)


if __name__ == "__main__":
    main()
