"""The asyncio client and its sessions: the blocking client's methods, awaited."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx

from sandbox.bridge.approvals.models import Approval
from sandbox.client._base import BaseClient, RunEvents
from sandbox.exceptions import NotFoundError
from sandbox.models import FileEntry, OutputEvent, RunResult, SessionInfo
from sandbox.session_api import ToolInfo


class AsyncClient(BaseClient):
    """A client of one server. `base_url` is the server's root (not its /v1 or /mcp), else
    SANDBOX_URL, else http://127.0.0.1:8080; `api_key` is the key itself, else SANDBOX_API_KEY.

    Raises:
        InvalidInputError: a URL or key that cannot work (see `sandbox.client._base.configure`).
    """

    def __init__(
        self,
        base_url: str | None = None,
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

    async def sessions(self) -> list[SessionInfo]:
        """The open sessions this key opened, on any surface (REST, /mcp), oldest first."""
        r = await self.request("GET", "/v1/sessions")
        return [SessionInfo.model_validate(info) for info in r.json()]

    async def search_tools(
        self, query: str = "", detail: str = "summary", limit: int = 20, profile: str | None = None
    ) -> list[ToolInfo]:
        """Tools of `profile`, or of the profile this key's sessions get by default."""
        params: dict[str, str | int] = {"query": query, "detail": detail, "limit": limit}
        if profile is not None:
            params["profile"] = profile
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

    async def approvals(self, session: str | None = None) -> list[Approval]:
        """The owner's tool calls waiting for approval (of one session, if given)."""
        params = {"session": session} if session is not None else {}
        r = await self.request("GET", "/v1/approvals", params=params)
        return [Approval.model_validate(a) for a in r.json()]

    async def approve(self, approval_id: str, reason: str = "") -> Approval:
        """Let the waiting call go ahead.

        Raises:
            NotFoundError: no such pending approval of this key's owner (settled already?).
        """
        return await self._decide(approval_id, "approve", reason)

    async def deny(self, approval_id: str, reason: str = "") -> Approval:
        """Refuse the waiting call: the code gets ToolForbiddenError with `reason`.

        Raises:
            NotFoundError: no such pending approval of this key's owner (settled already?).
        """
        return await self._decide(approval_id, "deny", reason)

    async def _decide(self, approval_id: str, decision: str, reason: str) -> Approval:
        body = {"decision": decision, "reason": reason}
        r = await self.request("POST", f"/v1/approvals/{self._path(approval_id)}", json=body)
        return Approval.model_validate(r.json())

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
        body, events = self._c._run_body(code, timeout, env), RunEvents()
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
        params: dict[str, str | int] = {"query": query, "detail": detail, "limit": limit}
        return (await self._c.request("GET", f"{self._base}/tools", params=params)).json()  # type: ignore[no-any-return]

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
