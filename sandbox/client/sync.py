"""The blocking client and its sessions."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

from sandbox.bridge.approvals.models import Approval
from sandbox.client._base import BaseClient, RunEvents
from sandbox.exceptions import NotFoundError
from sandbox.models import FileEntry, OutputEvent, RunResult, SessionInfo
from sandbox.session_api import ToolInfo


class Client(BaseClient):
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

    def sessions(self) -> list[SessionInfo]:
        """The open sessions this key opened, on any surface (REST, /mcp), oldest first."""
        r = self.request("GET", "/v1/sessions")
        return [SessionInfo.model_validate(info) for info in r.json()]

    def search_tools(
        self, query: str = "", detail: str = "summary", limit: int = 20, profile: str | None = None
    ) -> list[ToolInfo]:
        """Tools of `profile`, or of the profile this key's sessions get by default."""
        params: dict[str, str | int] = {"query": query, "detail": detail, "limit": limit}
        if profile is not None:
            params["profile"] = profile
        return self.request("GET", "/v1/tools", params=params).json()  # type: ignore[no-any-return]

    def list_skills(self) -> list[FileEntry]:
        return [FileEntry.model_validate(e) for e in self.request("GET", "/v1/skills").json()]

    def read_skill(self, path: str) -> bytes:
        return self.request("GET", f"/v1/skills/{self._path(path)}").content

    def save_skill(self, path: str, data: bytes) -> None:
        self.request("PUT", f"/v1/skills/{self._path(path)}", content=data)

    def delete_skill(self, path: str) -> None:
        self.request("DELETE", f"/v1/skills/{self._path(path)}")

    def approvals(self, session: str | None = None) -> list[Approval]:
        """The owner's tool calls waiting for approval (of one session, if given)."""
        params = {"session": session} if session is not None else {}
        r = self.request("GET", "/v1/approvals", params=params)
        return [Approval.model_validate(a) for a in r.json()]

    def approve(self, approval_id: str, reason: str = "") -> Approval:
        """Let the waiting call go ahead.

        Raises:
            NotFoundError: no such pending approval of this key's owner (settled already?).
        """
        return self._decide(approval_id, "approve", reason)

    def deny(self, approval_id: str, reason: str = "") -> Approval:
        """Refuse the waiting call: the code gets ToolForbiddenError with `reason`.

        Raises:
            NotFoundError: no such pending approval of this key's owner (settled already?).
        """
        return self._decide(approval_id, "deny", reason)

    def _decide(self, approval_id: str, decision: str, reason: str) -> Approval:
        body = {"decision": decision, "reason": reason}
        r = self.request("POST", f"/v1/approvals/{self._path(approval_id)}", json=body)
        return Approval.model_validate(r.json())

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
        body, events = self._c._run_body(code, timeout, env), RunEvents()
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
        params: dict[str, str | int] = {"query": query, "detail": detail, "limit": limit}
        return (self._c.request("GET", f"{self._base}/tools", params=params)).json()  # type: ignore[no-any-return]

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
