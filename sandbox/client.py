"""Python client for the HTTP API, with the same session interface as the embedded Orchestrator:

    from sandbox.client import Client
    with Client("http://127.0.0.1:8080", api_key="sbx_...") as client:
        with client.session() as s:
            r = s.run("print(1)")

`RemoteSession` and the embedded `sandbox.Session` both satisfy `sandbox.session_api.SessionAPI`;
`AsyncClient` has the same methods, awaited (and `aclose()`), and its sessions satisfy
`AsyncSessionAPI`. Errors are the embedded API's classes, found by the server's error code
(`sandbox.exceptions.error_for`), and carry that `code` and the HTTP `status`.
Only idempotent requests (GET, PUT, DELETE, or a POST with an Idempotency-Key) are retried,
on connection errors and 502/503/504.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from sandbox.exceptions import (
    ApiError,
    BackendUnavailableError,
    NotFoundError,
    RateLimitedError,
    SandboxError,
    error_for,
)
from sandbox.models import FileEntry, OutputEvent, RunResult
from sandbox.session_api import ToolInfo

if TYPE_CHECKING:
    from sandbox.session_api import AsyncSessionAPI, SessionAPI

__all__ = ["AsyncClient", "AsyncRemoteSession", "Client", "OutputEvent", "RemoteSession"]

_IDEMPOTENT = {"GET", "PUT", "DELETE", "HEAD"}
_RETRY_STATUS = {502, 503, 504}


class _BaseClient:
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


class _RunEvents:
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


class Client(_BaseClient):
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        api_key: str | None = None,
        *,
        timeout: float = 330.0,
        retries: int = 2,
        verify: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, verify)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=self._headers,
            timeout=timeout,
            verify=verify,
            transport=transport,
        )

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(method, url, **kw)
            except httpx.TransportError as exc:
                if not self._should_retry(method, attempt, None, kw):
                    raise self._unreachable(exc) from exc
            else:
                if not self._should_retry(method, attempt, response.status_code, kw):
                    self._raise_for(response)
                    return response
            time.sleep(self._backoff(attempt))
            attempt += 1

    def session(
        self,
        *,
        ttl_s: float | None = None,
        idle_s: float | None = None,
        tools: list[str] | None = None,
        profile: str | None = None,
    ) -> RemoteSession:
        info = self.request(
            "POST", "/v1/sessions", json=self._session_body(ttl_s, idle_s, tools, profile)
        ).json()
        return RemoteSession(self, info["id"], info["owner"])

    def search_tools(
        self, query: str = "", detail: str = "summary", limit: int = 20
    ) -> list[ToolInfo]:
        params: dict[str, str | int] = {"query": query, "detail": detail, "limit": limit}
        return self.request("GET", "/v1/tools", params=params).json()  # type: ignore[no-any-return]

    def list_skills(self) -> list[FileEntry]:
        return [FileEntry.model_validate(e) for e in self.request("GET", "/v1/skills").json()]

    def read_skill(self, path: str) -> bytes:
        return self.request("GET", f"/v1/skills/{self._path(path)}").content

    def save_skill(self, path: str, data: bytes) -> None:
        self.request("PUT", f"/v1/skills/{self._path(path)}", content=data)

    def delete_skill(self, path: str) -> None:
        self.request("DELETE", f"/v1/skills/{self._path(path)}")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RemoteSession:
    """A session on the server; the same methods as `sandbox.Session`."""

    def __init__(self, client: Client, session_id: str, owner: str) -> None:
        self._c, self.id, self.owner = client, session_id, owner
        self._base = f"/v1/sessions/{session_id}"

    def run(
        self, code: str, timeout: float | None = None, env: dict[str, str] | None = None
    ) -> RunResult:
        r = self._c.request(
            "POST",
            f"{self._base}/runs",
            json=self._c._run_body(code, timeout, env),
            headers=self._c._idempotency(),
        )
        return RunResult.model_validate(r.json())

    def run_command(
        self,
        command: list[str] | str,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> RunResult:
        """Run a command (argv, no shell) the profile allows."""
        body = {
            k: v
            for k, v in {"command": command, "timeout": timeout, "env": env}.items()
            if v is not None
        }
        return RunResult.model_validate(
            self._c.request(
                "POST", f"{self._base}/commands", json=body, headers=self._c._idempotency()
            ).json()
        )

    def stream(
        self, code: str, timeout: float | None = None, env: dict[str, str] | None = None
    ) -> Iterator[OutputEvent | RunResult]:
        """Output events as the server sends them, then the RunResult.

        Raises:
            The errors of `run`, from the iterator; BackendUnavailableError if the connection
            fails; ApiError if the stream ends without the result.
        """
        body, events = self._c._run_body(code, timeout, env), _RunEvents()
        try:
            with self._c._http.stream("POST", f"{self._base}/runs/stream", json=body) as response:
                if not response.is_success:
                    response.read()
                    self._c._raise_for(response)
                for line in response.iter_lines():
                    event = events.feed(line)
                    if event is not None:
                        yield event
                    if events.done:
                        return
        except httpx.TransportError as exc:
            raise self._c._unreachable(exc) from exc
        events.end()

    def upload(self, path: str, data: bytes) -> None:
        self._c.request("PUT", f"{self._base}/files/{self._c._path(path)}", content=data)

    def download(self, path: str) -> bytes:
        return self._c.request("GET", f"{self._base}/files/{self._c._path(path)}").content

    def read_text(self, path: str, max_bytes: int = 65536) -> str:
        r = self._c.request(
            "GET", f"{self._base}/preview/{self._c._path(path)}", params={"max_bytes": max_bytes}
        )
        return str(r.json()["text"])

    def list_files(self, path: str = "") -> list[FileEntry]:
        r = self._c.request("GET", f"{self._base}/files", params={"path": path})
        return [FileEntry.model_validate(e) for e in r.json()]

    def delete_file(self, path: str) -> None:
        self._c.request("DELETE", f"{self._base}/files/{self._c._path(path)}")

    def save_skill(self, path: str, data: bytes) -> None:
        self._c.save_skill(path, data)

    def read_skill(self, path: str) -> bytes:
        return self._c.read_skill(path)

    def list_skills(self) -> list[FileEntry]:
        return self._c.list_skills()

    def delete_skill(self, path: str) -> None:
        self._c.delete_skill(path)

    def search_tools(
        self, query: str = "", detail: str = "summary", limit: int = 20
    ) -> list[ToolInfo]:
        return self._c.search_tools(query, detail, limit)

    def close(self) -> None:
        with contextlib.suppress(NotFoundError):  # already expired or closed
            self._c.request("DELETE", self._base)

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient(_BaseClient):
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        api_key: str | None = None,
        *,
        timeout: float = 330.0,
        retries: int = 2,
        verify: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, verify)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            timeout=timeout,
            verify=verify,
            transport=transport,
        )

    async def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, url, **kw)
            except httpx.TransportError as exc:
                if not self._should_retry(method, attempt, None, kw):
                    raise self._unreachable(exc) from exc
            else:
                if not self._should_retry(method, attempt, response.status_code, kw):
                    self._raise_for(response)
                    return response
            await asyncio.sleep(self._backoff(attempt))
            attempt += 1

    async def session(
        self,
        *,
        ttl_s: float | None = None,
        idle_s: float | None = None,
        tools: list[str] | None = None,
        profile: str | None = None,
    ) -> AsyncRemoteSession:
        r = await self.request(
            "POST", "/v1/sessions", json=self._session_body(ttl_s, idle_s, tools, profile)
        )
        info = r.json()
        return AsyncRemoteSession(self, info["id"], info["owner"])

    async def search_tools(
        self, query: str = "", detail: str = "summary", limit: int = 20
    ) -> list[ToolInfo]:
        params: dict[str, str | int] = {"query": query, "detail": detail, "limit": limit}
        return (await self.request("GET", "/v1/tools", params=params)).json()  # type: ignore[no-any-return]

    async def list_skills(self) -> list[FileEntry]:
        return [
            FileEntry.model_validate(e) for e in (await self.request("GET", "/v1/skills")).json()
        ]

    async def save_skill(self, path: str, data: bytes) -> None:
        await self.request("PUT", f"/v1/skills/{self._path(path)}", content=data)

    async def read_skill(self, path: str) -> bytes:
        return (await self.request("GET", f"/v1/skills/{self._path(path)}")).content

    async def delete_skill(self, path: str) -> None:
        await self.request("DELETE", f"/v1/skills/{self._path(path)}")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncRemoteSession:
    """A session on the server, for asyncio; the same methods as `RemoteSession`, awaited."""

    def __init__(self, client: AsyncClient, session_id: str, owner: str) -> None:
        self._c, self.id, self.owner = client, session_id, owner
        self._base = f"/v1/sessions/{session_id}"

    async def run(
        self, code: str, timeout: float | None = None, env: dict[str, str] | None = None
    ) -> RunResult:
        r = await self._c.request(
            "POST",
            f"{self._base}/runs",
            json=self._c._run_body(code, timeout, env),
            headers=self._c._idempotency(),
        )
        return RunResult.model_validate(r.json())

    async def run_command(
        self,
        command: list[str] | str,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> RunResult:
        body = {
            k: v
            for k, v in {"command": command, "timeout": timeout, "env": env}.items()
            if v is not None
        }
        r = await self._c.request(
            "POST", f"{self._base}/commands", json=body, headers=self._c._idempotency()
        )
        return RunResult.model_validate(r.json())

    async def stream(
        self, code: str, timeout: float | None = None, env: dict[str, str] | None = None
    ) -> AsyncIterator[OutputEvent | RunResult]:
        """Output events as the server sends them, then the RunResult.

        Raises:
            The errors of `run`, from the iterator; BackendUnavailableError if the connection
            fails; ApiError if the stream ends without the result.
        """
        body, events = self._c._run_body(code, timeout, env), _RunEvents()
        try:
            async with self._c._http.stream(
                "POST", f"{self._base}/runs/stream", json=body
            ) as response:
                if not response.is_success:
                    await response.aread()
                    self._c._raise_for(response)
                async for line in response.aiter_lines():
                    event = events.feed(line)
                    if event is not None:
                        yield event
                    if events.done:
                        return
        except httpx.TransportError as exc:
            raise self._c._unreachable(exc) from exc
        events.end()

    async def upload(self, path: str, data: bytes) -> None:
        await self._c.request("PUT", f"{self._base}/files/{self._c._path(path)}", content=data)

    async def download(self, path: str) -> bytes:
        return (await self._c.request("GET", f"{self._base}/files/{self._c._path(path)}")).content

    async def read_text(self, path: str, max_bytes: int = 65536) -> str:
        r = await self._c.request(
            "GET", f"{self._base}/preview/{self._c._path(path)}", params={"max_bytes": max_bytes}
        )
        return str(r.json()["text"])

    async def list_files(self, path: str = "") -> list[FileEntry]:
        r = await self._c.request("GET", f"{self._base}/files", params={"path": path})
        return [FileEntry.model_validate(e) for e in r.json()]

    async def delete_file(self, path: str) -> None:
        await self._c.request("DELETE", f"{self._base}/files/{self._c._path(path)}")

    async def save_skill(self, path: str, data: bytes) -> None:
        await self._c.save_skill(path, data)

    async def read_skill(self, path: str) -> bytes:
        return await self._c.read_skill(path)

    async def list_skills(self) -> list[FileEntry]:
        return await self._c.list_skills()

    async def delete_skill(self, path: str) -> None:
        await self._c.delete_skill(path)

    async def search_tools(
        self, query: str = "", detail: str = "summary", limit: int = 20
    ) -> list[ToolInfo]:
        return await self._c.search_tools(query, detail, limit)

    async def aclose(self) -> None:
        with contextlib.suppress(NotFoundError):
            await self._c.request("DELETE", self._base)

    async def __aenter__(self) -> AsyncRemoteSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


if TYPE_CHECKING:  # mypy holds the remote sessions to the session interface

    def _conforms(s: RemoteSession, a: AsyncRemoteSession) -> tuple[SessionAPI, AsyncSessionAPI]:
        return s, a
