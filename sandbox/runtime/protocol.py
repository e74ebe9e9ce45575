"""The wire protocol between the controller and the in-box runtime; both ends import this file.

Everything goes over one Unix socket, which the controller bind-mounts at /run/sbx/sbx.sock:
  1. the runtime opens three connections, each with one tag byte: b"C" control, b"O" stdout,
     b"E" stderr;
  2. on control, the controller sends
     b"RUN <code_len> <env_len> <cwd_len> <token_len> <options_len>\\n"
     + code + env + cwd + token + options (all UTF-8): env is NUL-separated KEY=VALUE items,
     options the limits the runtime applies itself as ASCII `name=integer` pairs joined by
     commas (no JSON: the waiting runtime must not pay for importing it) (`max_call_bytes`: the
     largest CALL body the controller accepts); the token exists only from here on, a waiting
     container has none;
  3. the code runs in the runtime's process with fd 1 and 2 on the stdout and stderr
     connections; `sandbox_tools.call_tool` sends b"CALL <len>\\n" + JSON on control and reads
     back b"RESP <len>\\n" + JSON, whose error, if any, carries one of ERROR_CODES;
  4. the runtime sends b"EXIT <n>\\n" on control and blocks until the controller closes it.

The runtime shares a uid with the user's code, which can kill or impersonate it: the controller
trusts nothing it says and enforces every limit itself. Limits sent in the RUN frame only let
honest code fail early, with a clear error, instead of losing its control stream.

Where the runtime finds things: $SBX_SOCKET names the socket (default: /run/sbx/sbx.sock under
the root). $SBX_ROOT (default "/") is where the box's paths live: the delivered cwd (such as
/workspace) and the folder holding the generated /servers package are taken relative to it, so
the runtime can also run as a plain host process.

Stdlib only: this file is copied into the image beside sbxrt.py.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

# Connection tags, the first byte on each connection.
TAG_CONTROL = b"C"
TAG_STDOUT = b"O"
TAG_STDERR = b"E"
STREAM_TAGS = {TAG_CONTROL: "ctl", TAG_STDOUT: "out", TAG_STDERR: "err"}

# Verbs on the control stream: RUN from the controller, CALL and EXIT from the runtime, RESP back.
RUN = b"RUN"
CALL = b"CALL"
RESP = b"RESP"
EXIT = b"EXIT"

# Paths. The socket folder is the run's own; the rest are the box's layout.
SOCKET_NAME = "sbx.sock"
EGRESS_SOCKET = "egress.sock"
"""Present in a run's socket folder only for profiles with network 'allowlist'."""
CONTAINER_DIR = "/run/sbx"
SOCKET_PATH = f"{CONTAINER_DIR}/{SOCKET_NAME}"
RUNTIME_DIR = "/opt/sbx"
WORKSPACE = "/workspace"
SERVERS = "/servers"
SKILLS = "/skills"
SOCKET_ENV = "SBX_SOCKET"
ROOT_ENV = "SBX_ROOT"

# Tool error codes a RESP may carry; the runtime raises a matching ToolError subclass.
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
BAD_REQUEST = "bad_request"
TOO_LARGE = "too_large"
TIMEOUT = "timeout"
RATE_LIMITED = "rate_limited"
UPSTREAM_ERROR = "upstream_error"
UNAVAILABLE = "unavailable"
INTERNAL = "internal"
ERROR_CODES = (
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    BAD_REQUEST,
    TOO_LARGE,
    TIMEOUT,
    RATE_LIMITED,
    UPSTREAM_ERROR,
    UNAVAILABLE,
    INTERNAL,
)

# Size caps. Header lines are read byte by byte up to these lengths, newline included.
MAX_RUN_HEADER = 128
MAX_CONTROL_LINE = 24
"""A CALL or EXIT line from the runtime."""
MAX_RESP_HEADER = 32
MAX_OPTIONS_BYTES = 4096
MAX_CALL_DIGITS = 9
DEFAULT_MAX_CALL_BYTES = 256 * 1024


class ProtocolError(ValueError):
    """A frame that breaks the protocol: malformed, oversized or badly encoded."""


def encode_run(
    code: str, env: Mapping[str, str], cwd: str, token: str, options: Mapping[str, int]
) -> bytes:
    """The RUN frame that hands the runtime its one job.

    Raises:
        ProtocolError: the options do not fit MAX_OPTIONS_BYTES, or the token is not ASCII.
    """
    if not token.isascii():
        raise ProtocolError("the run token must be ASCII")
    parts = (
        code.encode("utf-8"),
        "\0".join(f"{k}={v}" for k, v in env.items()).encode("utf-8"),
        cwd.encode("utf-8"),
        token.encode("ascii"),
        _encode_options(options),
    )
    if len(parts[4]) > MAX_OPTIONS_BYTES:
        raise ProtocolError(f"run options are larger than {MAX_OPTIONS_BYTES} bytes")
    header = b" ".join([RUN, *(b"%d" % len(p) for p in parts)]) + b"\n"
    return header + b"".join(parts)


def parse_run_header(line: bytes) -> tuple[int, int, int, int, int]:
    """The five section lengths of a RUN line (code, env, cwd, token, options).

    Raises:
        ProtocolError: the line is not a well-formed RUN header.
    """
    fields = _fields(line, MAX_RUN_HEADER)
    if len(fields) != 6 or fields[0] != RUN or not all(_is_count(f, 10) for f in fields[1:]):
        raise ProtocolError("malformed RUN header")
    code, env, cwd, token, options = (int(f) for f in fields[1:])
    if options > MAX_OPTIONS_BYTES:
        raise ProtocolError(f"run options are larger than {MAX_OPTIONS_BYTES} bytes")
    return code, env, cwd, token, options


def decode_env(raw: bytes) -> dict[str, str]:
    """The env section of a RUN frame.

    Raises:
        ProtocolError: not UTF-8, or an item without '='.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("env is not UTF-8") from None
    items = [item.split("=", 1) for item in text.split("\0") if item]
    if any(len(item) != 2 for item in items):
        raise ProtocolError("env item without '='")
    return {key: value for key, value in items}


def _encode_options(options: Mapping[str, int]) -> bytes:
    for name, value in options.items():
        if not _is_option_name(name) or type(value) is not int or value < 0:
            raise ProtocolError("run options are names of [a-z_] with non-negative integers")
    return ",".join(f"{k}={v}" for k, v in options.items()).encode("ascii")


def decode_options(raw: bytes) -> dict[str, int]:
    """The options section of a RUN frame: `name=integer` pairs joined by commas.

    Raises:
        ProtocolError: oversized or malformed.
    """
    if len(raw) > MAX_OPTIONS_BYTES:
        raise ProtocolError(f"run options are larger than {MAX_OPTIONS_BYTES} bytes")
    options: dict[str, int] = {}
    for item in raw.split(b",") if raw else []:
        name, _, value = item.partition(b"=")
        if not (name.isascii() and _is_option_name(name.decode()) and _is_count(value, 19)):
            raise ProtocolError("malformed run options")
        options[name.decode()] = int(value)
    return options


def _is_option_name(name: str) -> bool:
    return 0 < len(name) <= 32 and all(c == "_" or "a" <= c <= "z" for c in name)


def encode_call(body: bytes) -> bytes:
    """A CALL frame: one tool call's JSON body."""
    return b"%s %d\n" % (CALL, len(body)) + body


def encode_exit(code: int) -> bytes:
    """The EXIT line that reports the code's exit status."""
    return b"%s %d\n" % (EXIT, code)


def parse_control_line(line: bytes) -> tuple[bytes, int]:
    """(EXIT, status) or (CALL, body length) from a line the runtime sent on control.

    Raises:
        ProtocolError: anything else, including statuses outside -9999..9999.
    """
    fields = _fields(line, MAX_CONTROL_LINE)
    if len(fields) == 2 and fields[0] == EXIT:
        digits = fields[1].removeprefix(b"-")
        if _is_count(digits, 4):
            return EXIT, int(fields[1])
    if len(fields) == 2 and fields[0] == CALL and _is_count(fields[1], MAX_CALL_DIGITS):
        return CALL, int(fields[1])
    raise ProtocolError("malformed control line")


def encode_response(call_id: object, payload: Mapping[str, object]) -> bytes:
    """A RESP frame: the reply to one tool call, its `id` echoed (host side)."""
    import json  # not at the top: the waiting runtime must not pay for it

    body = json.dumps({"id": call_id, **payload}, default=str).encode()
    return b"%s %d\n" % (RESP, len(body)) + body


def parse_response_header(line: bytes) -> int:
    """The body length of a RESP line.

    Raises:
        ProtocolError: the line is not a well-formed RESP header.
    """
    fields = _fields(line, MAX_RESP_HEADER)
    if len(fields) != 2 or fields[0] != RESP or not _is_count(fields[1], 10):
        raise ProtocolError("malformed RESP header")
    return int(fields[1])


def _fields(line: bytes, limit: int) -> list[bytes]:
    if len(line) > limit or not line.endswith(b"\n"):
        raise ProtocolError("header line too long or unterminated")
    return line[:-1].split(b" ")


def _is_count(field: bytes, max_digits: int) -> bool:
    # bytes.isdigit() is ASCII-only, so int() below accepts exactly what passed here.
    return 0 < len(field) <= max_digits and field.isdigit()
