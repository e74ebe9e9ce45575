"""Everything the sync and async clients share that is not I/O: URLs, headers, retries,
error mapping and the parsing of a streamed run's server-sent events."""

from __future__ import annotations

import contextlib
import json
import uuid
import warnings
from typing import Any
from urllib.parse import quote

import httpx

from sandbox.exceptions import (
    ApiError,
    BackendUnavailableError,
    RateLimitedError,
    SandboxError,
    error_for,
)
from sandbox.models import OutputEvent, RunResult

_IDEMPOTENT = {"GET", "PUT", "DELETE", "HEAD"}
_RETRY_STATUS = {502, 503, 504}


class BaseClient:
    """Everything that is not I/O: URLs, headers, retries, error mapping."""

    def __init__(
        self, base_url: str, api_key: str | None, timeout: float, retries: int, verify: bool
    ):
        if not verify:
            warnings.warn("TLS certificate verification is disabled for this client", stacklevel=3)
        self.base_url = base_url.rstrip("/")
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
