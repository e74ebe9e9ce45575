"""What a run's code, timeout and environment must look like before anything starts."""

from __future__ import annotations

import re

from sandbox.exceptions import InvalidInputError
from sandbox.models import MiB

MAX_CODE_BYTES = 1 * MiB
MAX_ENV_BYTES = 64 * 1024
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def checked_run_args(
    code: str, timeout: float | None, env: dict[str, str] | None, limit: float
) -> float:
    """The run's timeout in seconds (`limit` when None).

    Raises:
        InvalidInputError: code, timeout or env are malformed or too large.
    """
    if not isinstance(code, str):
        raise InvalidInputError("code must be a string of Python source")
    if len(code.encode("utf-8", "surrogatepass")) > MAX_CODE_BYTES:
        raise InvalidInputError(f"code is larger than {MAX_CODE_BYTES} bytes")
    if "\x00" in code:
        raise InvalidInputError("code contains a NUL byte")
    if timeout is None:
        timeout = limit
    if not isinstance(timeout, int | float) or not 0 < timeout <= limit:
        raise InvalidInputError(f"timeout must be in (0, {limit}] seconds, got {timeout!r}")
    size = 0
    for key, value in (env or {}).items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise InvalidInputError(f"bad environment variable name {key!r:.80}")
        if not isinstance(value, str) or "\x00" in value:
            raise InvalidInputError(f"environment variable {key} must be a string without NUL")
        size += len(key) + len(value.encode("utf-8", "surrogatepass")) + 2
    if size > MAX_ENV_BYTES:
        raise InvalidInputError(f"environment is larger than {MAX_ENV_BYTES} bytes")
    return float(timeout)
