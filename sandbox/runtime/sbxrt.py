"""In-container runtime: dial the run's socket, wait for code, run it once, report, wait to be killed.

The wire protocol, and the environment this file reads ($SBX_SOCKET, $SBX_ROOT), are described
in protocol.py, which lies beside this file (in the image: /opt/sbx/).

This file runs with the same uid as the user's code, which can kill or impersonate it, so the
controller trusts nothing it says: every limit is enforced on the host.
"""

import _thread
import os
import socket
import sys
import types


def _load_sibling(name: str) -> types.ModuleType:
    """<name>.py from this file's folder, loaded by path without touching sys.path or
    sys.modules: `python3 -I` keeps the folder off sys.path, and user code must not import the
    runtime's internals by accident. Not through importlib.util, which would pull a dozen
    modules into every waiting container; from the <name>.pyc the image compiled beside it
    when that matches this interpreter and the source, else compiled here."""
    import marshal

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    module = types.ModuleType("_sbxrt_" + name)
    module.__file__ = path
    exec(_sibling_code(path, marshal), module.__dict__)  # noqa: S102 - our own file
    return module


def _sibling_code(path: str, marshal: types.ModuleType) -> types.CodeType:
    magic = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", None)
    try:
        with open(path + "c", "rb") as fh:
            data = fh.read()
        st = os.stat(path)
        header_ok = (
            magic is not None
            and data[:4] == magic
            and int.from_bytes(data[4:8], "little") == 0  # a timestamp-checked pyc
            and int.from_bytes(data[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(data[12:16], "little") == st.st_size & 0xFFFFFFFF
        )
        if header_ok:
            code = marshal.loads(data[16:])
            if isinstance(code, types.CodeType):
                return code
    except (OSError, ValueError, EOFError, TypeError):
        pass
    with open(path, "rb") as fh:
        return compile(fh.read(), path, "exec")


TYPE_CHECKING = False
if TYPE_CHECKING:  # the type checker reads the package's copy; the box has no package
    from sandbox.runtime import cells, protocol
else:
    protocol = _load_sibling("protocol")
    cells = _load_sibling("cells")

ROOT = os.environ.get(protocol.ROOT_ENV) or "/"


def _in_root(path: str) -> str:
    """A box path such as /workspace, where it lies under $SBX_ROOT."""
    return os.path.normpath(os.path.join(ROOT, path.lstrip("/")))


SOCKET_PATH = os.environ.get(protocol.SOCKET_ENV) or _in_root(protocol.SOCKET_PATH)
EGRESS_PATH = os.path.join(os.path.dirname(SOCKET_PATH), protocol.EGRESS_SOCKET)
PROXY_PORT = 3128


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


def _read_line(sock: socket.socket, limit: int) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        if len(line) >= limit:
            raise EOFError("header line too long")
        byte = sock.recv(1)
        if not byte:
            raise EOFError("controller closed the channel")
        line += byte
    return line


def _read_request(ctl: socket.socket) -> tuple[str, dict[str, str], str, str, dict[str, int]]:
    """The RUN frame: code, env, cwd, token, options. Raises EOFError or ProtocolError."""
    sizes = protocol.parse_run_header(_read_line(ctl, protocol.MAX_RUN_HEADER))
    code, env, cwd, token, options = (_read_exact(ctl, n) for n in sizes)
    return (
        code.decode("utf-8"),
        protocol.decode_env(env),
        cwd.decode("utf-8"),
        token.decode("ascii"),
        protocol.decode_options(options),
    )


class ToolError(Exception):
    """A tool call that did not return a result. `code` says why (one of protocol.ERROR_CODES)."""

    code = "tool_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class ToolAuthError(ToolError, PermissionError):
    code = protocol.UNAUTHORIZED


class ToolForbiddenError(ToolError, PermissionError):
    code = protocol.FORBIDDEN


class ToolNotFoundError(ToolError, LookupError):
    code = protocol.NOT_FOUND


class ToolInputError(ToolError, ValueError):
    code = protocol.BAD_REQUEST


class ToolTimeoutError(ToolError, TimeoutError):
    code = protocol.TIMEOUT


class ToolRateLimitError(ToolError):
    code = protocol.RATE_LIMITED


class UpstreamError(ToolError):
    code = protocol.UPSTREAM_ERROR


_ERRORS: dict[str, type[ToolError]] = {
    protocol.UNAUTHORIZED: ToolAuthError,
    protocol.FORBIDDEN: ToolForbiddenError,
    protocol.NOT_FOUND: ToolNotFoundError,
    protocol.BAD_REQUEST: ToolInputError,
    protocol.TOO_LARGE: ToolInputError,
    protocol.TIMEOUT: ToolTimeoutError,
    protocol.RATE_LIMITED: ToolRateLimitError,
    protocol.UPSTREAM_ERROR: UpstreamError,
    protocol.UNAVAILABLE: UpstreamError,
    protocol.INTERNAL: ToolError,
}
_state: dict[str, object] = {
    "ctl": None,
    "token": "",
    "seq": 0,
    "lock": _thread.allocate_lock(),
    # Replaced by the cap in the RUN frame; the controller enforces its own either way.
    "max_call_bytes": protocol.DEFAULT_MAX_CALL_BYTES,
}


def call_tool(server: str, tool: str, args: dict[str, object] | None = None) -> object:
    """Call an MCP tool through the controller. Raises a ToolError subclass on failure."""
    import json

    if not isinstance(server, str) or not isinstance(tool, str):
        raise ToolInputError("server and tool must be strings")
    if args is not None and not isinstance(args, dict):
        raise ToolInputError("args must be a dict")
    ctl = _state["ctl"]
    if not isinstance(ctl, socket.socket):
        raise ToolError("no tool channel in this run", protocol.UNAVAILABLE)
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
        limit = int(_state["max_call_bytes"])  # type: ignore[call-overload]
        if len(body) > limit:
            # Sending it would make the controller hang up the control stream.
            raise ToolInputError(f"call is larger than {limit} bytes", protocol.TOO_LARGE)
        try:
            ctl.sendall(protocol.encode_call(body))
            size = protocol.parse_response_header(_read_line(ctl, protocol.MAX_RESP_HEADER))
            reply = json.loads(_read_exact(ctl, size))
        except (OSError, EOFError, ValueError) as exc:
            raise ToolError(f"tool channel failed: {exc}", protocol.UNAVAILABLE) from None
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
    cwd = _in_root(cwd)
    os.chdir(cwd)
    sys.path.insert(0, cwd)
    sys.path.append(_in_root("/"))  # makes the generated /servers package importable
    sys.modules["sandbox_tools"] = _tools_module()
    sys.argv = ["-c"]
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    cells.CellSource(code).install()
    try:
        body, shown = cells.compile_cell(code)
    except (SyntaxError, ValueError) as exc:
        import traceback

        traceback.print_exception(type(exc), exc, None)  # the message shows the line
        return 1
    try:
        exec(body, main.__dict__)  # noqa: S102 - running it is the job
        if shown is not None:
            exec(shown, main.__dict__)  # noqa: S102 - prints through sys.displayhook
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
    ctl = _dial(protocol.TAG_CONTROL)
    out = _dial(protocol.TAG_STDOUT)
    err = _dial(protocol.TAG_STDERR)
    code, env, cwd, token, options = _read_request(ctl)
    if os.path.exists(EGRESS_PATH):
        _start_egress_relay()
    _state["ctl"], _state["token"] = ctl, token
    _state["max_call_bytes"] = options.get("max_call_bytes", protocol.DEFAULT_MAX_CALL_BYTES)
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
        ctl.sendall(protocol.encode_exit(rc))
        ctl.recv(1)  # the controller kills the container once it has read the result
    except OSError:
        pass
    os._exit(rc)


if __name__ == "__main__":
    main()
