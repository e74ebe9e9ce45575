"""Everything the sync and async clients share that is not I/O: URLs, headers, retries,
error mapping and the parsing of a streamed run's server-sent events."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
import warnings
from typing import Any
from urllib.parse import quote

import httpx

from sandbox.exceptions import (
    ApiError,
    BackendUnavailableError,
    InvalidInputError,
    RateLimitedError,
    SandboxError,
    error_for,
)
from sandbox.models import OutputEvent, RunResult

_IDEMPOTENT = {"GET", "PUT", "DELETE", "HEAD"}
_RETRY_STATUS = {502, 503, 504}
DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV, KEY_ENV = "SANDBOX_URL", "SANDBOX_API_KEY"


class BaseClient:
    """Everything that is not I/O: URLs, headers, retries, error mapping."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        retries: int,
        verify: bool,
    ):
        if not verify:
            warnings.warn("TLS certificate verification is disabled for this client", stacklevel=3)
        self.base_url, api_key = configure(base_url, api_key)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout, self._retries, self._verify = timeout, retries, verify

    def __repr__(self) -> str:  # the API key never appears here
        return f"{type(self).__name__}({self.base_url!r})"

    def _should_retry(
        self, method: str, attempt: int, status: int | None, kw: dict[str, Any]
    ) -> bool:
        # A POST is safe to resend only with an Idempotency-Key: the server then runs it once.
        safe = method in _IDEMPOTENT or "Idempotency-Key" in (kw.get("headers") or {})
        return safe and attempt < self._retries and (status is None or status in _RETRY_STATUS)

    @staticmethod
    def _idempotency() -> dict[str, str]:
        return {"Idempotency-Key": uuid.uuid4().hex}

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(min(2.0, 0.1 * 2**attempt))

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        """Raises the class `error_for` names for the response's error code, if it failed."""
        if response.is_success:
            return
        try:
            err = response.json()["error"]
            code, message = str(err["code"]), str(err["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", response.text[:300] or response.reason_phrase
        exc = _error(code, f"{message} [{code}, HTTP {response.status_code}]")
        exc.status = response.status_code
        if isinstance(exc, RateLimitedError) and "retry-after" in response.headers:
            with contextlib.suppress(ValueError):
                exc.retry_after = float(response.headers["retry-after"])
        raise exc

    def _unreachable(self, exc: httpx.TransportError) -> BackendUnavailableError:
        return BackendUnavailableError(f"cannot reach {self.base_url}: {exc}")

    @staticmethod
    def _path(path: str) -> str:
        # Dot segments are encoded so URL normalization cannot drop them: the server must see
        # (and refuse) a '..' rather than silently get another path.
        return "/".join(
            "%2E" * len(seg) if seg in (".", "..") else quote(seg, safe="")
            for seg in path.split("/")
        )

    @staticmethod
    def _session_body(
        ttl_s: float | None, idle_s: float | None, tools: list[str] | None, profile: str | None
    ) -> dict[str, Any]:
        body = {"ttl_s": ttl_s, "idle_s": idle_s, "tools": tools, "profile": profile}
        return {k: v for k, v in body.items() if v is not None}

    @staticmethod
    def _run_body(code: str, timeout: float | None, env: dict[str, str] | None) -> dict[str, Any]:
        return {
            k: v for k, v in {"code": code, "timeout": timeout, "env": env}.items() if v is not None
        }


def configure(base_url: str | None, api_key: str | None) -> tuple[str, str | None]:
    """The base URL and key to use: those given, else SANDBOX_URL and SANDBOX_API_KEY, else
    http://127.0.0.1:8080 and no key.

    Raises:
        InvalidInputError: a URL or key that cannot work, saying what is wrong with it.
    """
    # The client is an edge of the package, as the CLI is: it reads the environment here,
    # once, and only for what its caller left out.
    url_source, key_source = "base_url", "api_key"
    if base_url is None:
        base_url = os.environ.get(URL_ENV) or DEFAULT_URL
        url_source = URL_ENV if os.environ.get(URL_ENV) else url_source
    if api_key is None and os.environ.get(KEY_ENV):
        api_key, key_source = os.environ[KEY_ENV], KEY_ENV
    url = check_base_url(base_url, url_source)
    return url, None if api_key is None else check_api_key(api_key, key_source)


def check_base_url(url: str, source: str = "base_url") -> str:
    """`url` without a trailing slash: the server's root, where /v1 and /mcp live.

    Raises:
        InvalidInputError: not an http(s) URL, or one that names an endpoint (/v1, /mcp)
            rather than the server.
    """
    if url != url.strip():
        raise InvalidInputError(f"{source} {url.strip()!r} has spaces or a newline around it")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidInputError(f"{source} {url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInputError(
            f"{source} {url!r} is not an http:// or https:// URL (e.g. {DEFAULT_URL})"
        )
    if parsed.query or parsed.fragment:
        raise InvalidInputError(f"{source} {url!r} has a query or fragment; give the base URL")
    url = url.rstrip("/")
    root, _, last = url.rpartition("/")
    if last == "v1" and "://" in root:
        raise InvalidInputError(
            f"{source} {url!r} ends in /v1: give the server's base URL, {root!r} (the client "
            "adds /v1/... itself)"
        )
    if last == "mcp" and "://" in root:
        raise InvalidInputError(
            f"{source} {url!r} is the MCP endpoint, for MCP clients (Claude Code, Cursor...); "
            f"this client uses the HTTP API: give the server's base URL, {root!r}"
        )
    return url


def check_api_key(key: str, source: str = "api_key") -> str:
    """`key`, if it can be sent as a bearer token. The key itself never appears in a message.

    Raises:
        InvalidInputError: empty, with whitespace around it (a file's newline), with a
            'Bearer ' prefix, a URL, or with characters an HTTP header cannot carry.
    """
    if not key:
        raise InvalidInputError(f"{source} is empty")
    if key != key.strip():
        where = "ends with a newline" if key.endswith("\n") else "has whitespace around it"
        raise InvalidInputError(
            f"{source} {where}: remove it (keys hold no whitespace; a key file read with "
            ".read() keeps its newline, so .strip() it)"
        )
    if key.lower().startswith("bearer "):
        raise InvalidInputError(f"{source} starts with 'Bearer ': give the key alone")
    if key.startswith(("http://", "https://")):
        raise InvalidInputError(f"{source} is a URL: the base URL comes first, then the key")
    bad = next((i for i, ch in enumerate(key) if not "!" <= ch <= "~"), None)
    if bad is not None:
        raise InvalidInputError(
            f"{source} has a character an HTTP header cannot carry at position {bad + 1} "
            "(keys are printable ASCII without spaces)"
        )
    return key


def _error(code: str, message: str) -> SandboxError:
    exc = error_for(code)(message)
    exc.code = code  # the server's own code, also when an alias or ApiError stands for it
    return exc


class RunEvents:
    """The events of a streamed run, from the lines of its server-sent-events body (no I/O,
    so the sync and async clients parse alike)."""

    def __init__(self) -> None:
        self._kind, self._data = "message", list[str]()
        self.done = False

    def feed(self, line: str) -> OutputEvent | RunResult | None:
        """The event a blank line completes, if it is one a caller sees.

        Raises:
            The SandboxError the server reported for the run (an `error` event).
        """
        if line.startswith("event:"):
            self._kind = line[6:].strip()
        elif line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
        elif not line:
            kind, data = self._kind, "\n".join(self._data)
            self._kind, self._data = "message", []
            return self._event(kind, data) if data else None
        return None

    def _event(self, kind: str, data: str) -> OutputEvent | RunResult | None:
        if kind not in ("stdout", "stderr", "result", "error"):
            return None  # an event this client does not know (from a newer server): skipped
        self.done = kind in ("result", "error")
        try:  # pydantic's ValidationError is a ValueError, as is json's JSONDecodeError
            if kind == "result":
                return RunResult.model_validate_json(data)
            if kind != "error":
                return OutputEvent.model_validate({"stream": kind, "text": json.loads(data)})
            err = json.loads(data)
            code, message = str(err.get("code", "internal")), str(err["message"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ApiError(f"malformed {kind!r} event in the run's stream") from exc
        raise _error(code, message)

    def end(self) -> None:
        """Raises ApiError if the body ended before the run's result."""
        if not self.done:
            raise ApiError("the stream ended before the run's result")
