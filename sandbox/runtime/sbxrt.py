"""In-container runtime: dial the run's socket, wait for code, run it once, report, wait to be killed.

Protocol (all over the one Unix socket the controller bind-mounts at /run/sbx/sbx.sock):
  1. three connections, each opened by sending one tag byte: b"C" control, b"O" stdout, b"E" stderr;
  2. on control, the controller sends b"RUN <code_len> <env_len> <cwd_len> <token_len>\\n"
     + code + env + cwd + token, env being NUL-separated KEY=VALUE items (all UTF-8); the
     token exists only from here on: a waiting container has none;
  3. the code runs in this process with fd 1 and 2 on the stdout and stderr connections;
     `sandbox_tools.call_tool` sends b"CALL <len>\\n" + JSON on control and reads back
     b"RESP <len>\\n" + JSON;
  4. the runtime sends b"EXIT <n>\\n" on control and blocks until the controller closes it.

This file runs with the same uid as the user's code, which can kill or impersonate it, so the
controller trusts nothing it says: every limit is enforced on the host.
"""

import _thread
import os
import socket
import sys
import types

SOCKET_PATH = os.environ.get("SBX_SOCKET", "/run/sbx/sbx.sock")
EGRESS_PATH = os.path.join(os.path.dirname(SOCKET_PATH), "egress.sock")
PROXY_PORT = 3128
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


def _read_request(ctl: socket.socket) -> tuple[str, dict[str, str], str, str]:
    header = b""
    while not header.endswith(b"\n"):
        byte = ctl.recv(1)
        if not byte or len(header) > MAX_HEADER:
            raise EOFError("bad header")
        header += byte
    verb, code_len, env_len, cwd_len, token_len = header.split()
    if verb != b"RUN":
        raise EOFError("bad verb")
    code = _read_exact(ctl, int(code_len)).decode("utf-8")
    env_raw = _read_exact(ctl, int(env_len)).decode("utf-8")
    cwd = _read_exact(ctl, int(cwd_len)).decode("utf-8")
    token = _read_exact(ctl, int(token_len)).decode("ascii")
    env = dict(item.split("=", 1) for item in env_raw.split("\0") if item)
    return code, env, cwd, token


class ToolError(Exception):
    """A tool call that did not return a result. `code` says why."""

    code = "tool_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class ToolAuthError(ToolError, PermissionError):
    code = "unauthorized"


class ToolForbiddenError(ToolError, PermissionError):
    code = "forbidden"


class ToolNotFoundError(ToolError, LookupError):
    code = "not_found"


class ToolInputError(ToolError, ValueError):
    code = "bad_request"


class ToolTimeoutError(ToolError, TimeoutError):
    code = "timeout"


class ToolRateLimitError(ToolError):
    code = "rate_limited"


class UpstreamError(ToolError):
    code = "upstream_error"


_ERRORS = {
    "unauthorized": ToolAuthError,
    "forbidden": ToolForbiddenError,
    "not_found": ToolNotFoundError,
    "bad_request": ToolInputError,
    "too_large": ToolInputError,
    "timeout": ToolTimeoutError,
    "rate_limited": ToolRateLimitError,
    "upstream_error": UpstreamError,
    "unavailable": UpstreamError,
}
MAX_CALL_BYTES = 256 * 1024
_state: dict[str, object] = {"ctl": None, "token": "", "seq": 0, "lock": _thread.allocate_lock()}


def _read_line(sock: socket.socket, limit: int = 32) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte or len(line) > limit:
            raise ToolError("the controller closed the tool channel", "unavailable")
        line += byte
    return line


def call_tool(server: str, tool: str, args: dict[str, object] | None = None) -> object:
    """Call an MCP tool through the controller. Raises a ToolError subclass on failure."""
    import json

    if not isinstance(server, str) or not isinstance(tool, str):
        raise ToolInputError("server and tool must be strings")
    if args is not None and not isinstance(args, dict):
        raise ToolInputError("args must be a dict")
    ctl = _state["ctl"]
    if not isinstance(ctl, socket.socket):
        raise ToolError("no tool channel in this run", "unavailable")
    lock = _state["lock"]
    with lock:  # type: ignore[attr-defined]
        _state["seq"] = seq = int(_state["seq"]) + 1  # type: ignore[call-overload]
        body = json.dumps(
            {
                "id": seq,
                "token": _state["token"],
                "server": server,
                "tool": tool,
                "args": args or {},
            }
        ).encode()
        if len(body) > MAX_CALL_BYTES:
            raise ToolInputError(f"arguments are larger than {MAX_CALL_BYTES} bytes", "too_large")
        try:
            ctl.sendall(b"CALL %d\n" % len(body) + body)
            header = _read_line(ctl).split()
            if len(header) != 2 or header[0] != b"RESP":
                raise ToolError("malformed reply from the controller", "unavailable")
            reply = json.loads(_read_exact(ctl, int(header[1])))
        except (OSError, EOFError, ValueError) as exc:
            raise ToolError(f"tool channel failed: {exc}", "unavailable") from None
    if reply.get("ok"):
        return reply.get("result")
    error = reply.get("error") or {}
    code = str(error.get("code", "tool_error"))
    raise _ERRORS.get(code, ToolError)(str(error.get("message", "tool call failed")), code)


def _tools_module() -> types.ModuleType:
    mod = types.ModuleType("sandbox_tools", "Call MCP tools from sandbox code.")
    for name in (
        "call_tool",
        "ToolError",
        "ToolAuthError",
        "ToolForbiddenError",
        "ToolNotFoundError",
        "ToolInputError",
        "ToolTimeoutError",
        "ToolRateLimitError",
        "UpstreamError",
        "_state",
    ):
        setattr(mod, name, globals()[name])

    def search_tools(query: str = "", detail: str = "summary", limit: int = 20) -> list[object]:
        """Find tools by keywords (also available as servers.search_tools)."""
        import servers  # type: ignore[import-not-found]

        return servers.search_tools(query, detail, limit)  # type: ignore[no-any-return]

    mod.search_tools = search_tools  # type: ignore[attr-defined]
    return mod


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run(code: str, env: dict[str, str], cwd: str) -> int:
    os.environ.update(env)
    os.chdir(cwd)
    sys.path.insert(0, cwd)
    sys.path.append("/")  # makes the generated /servers package importable
    sys.modules["sandbox_tools"] = _tools_module()
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


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:  # noqa: SIM105 - stdlib-lean runtime: no contextlib import on the start path
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _start_egress_relay() -> None:
    """Relay 127.0.0.1:3128 to the controller's egress proxy; the box itself has no route."""
    import threading

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", PROXY_PORT))
    server.listen(16)

    def serve() -> None:
        while True:
            client, _ = server.accept()
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(EGRESS_PATH)
            except OSError:
                client.close()
                continue
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    proxy = f"http://127.0.0.1:{PROXY_PORT}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ[name] = proxy


def main() -> None:
    ctl = _dial(b"C")
    out = _dial(b"O")
    err = _dial(b"E")
    code, env, cwd, token = _read_request(ctl)
    if os.path.exists(EGRESS_PATH):
        _start_egress_relay()
    _state["ctl"], _state["token"] = ctl, token
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
