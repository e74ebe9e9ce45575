"""The one interface of a session, whether it runs in this process or behind the HTTP API.

    SessionAPI        sandbox.Session (embedded), sandbox.client.RemoteSession
    AsyncSessionAPI   sandbox.client.AsyncRemoteSession: the same methods, awaited;
                      `stream` is an async iterator and the lifecycle is `aclose()`

Code written against `SessionAPI` runs unchanged on either side, and raises the same classes
from `sandbox.exceptions`. tests/unit/test_session_api.py holds every implementation to the
same parameter names, kinds and defaults.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from sandbox.models import FileEntry, OutputEvent, RunResult

ToolInfo = dict[str, Any]
"""One tool as `search_tools` describes it (JSON; which keys depends on `detail`)."""


@runtime_checkable
class SessionAPI(Protocol):
    """A session: runs sharing one workspace, the owner's skills, and the tools it may call."""

    @property
    def id(self) -> str: ...

    @property
    def owner(self) -> str: ...

    def run(
        self, code: str, timeout: float | None = None, env: dict[str, str] | None = None
    ) -> RunResult:
        """Run Python source in a fresh container. Timeouts, OOM kills and floods are
        outcomes on the result, not errors.

        Raises:
            InvalidInputError, PolicyViolationError, NotFoundError (the session is gone),
            RateLimitedError, BackendError.
        """
        ...

    def run_command(
        self,
        command: list[str] | str,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> RunResult:
        """Run a command (argv, no shell) the session's profile allows.

        Raises:
            PolicyViolationError: shell syntax, or a command the profile does not allow.
            The errors of `run`.
        """
        ...

    def stream(
        self, code: str, timeout: float | None = None, env: dict[str, str] | None = None
    ) -> Iterator[OutputEvent | RunResult]:
        """Run like `run`, yielding output as it is written and the RunResult last.

        Raises:
            The errors of `run`, from the iterator.
        """
        ...

    def upload(self, path: str, data: bytes) -> None:
        """Write a file into /workspace (parents are created).

        Raises:
            UnsafePathError, FileTypeError, QuotaExceededError.
        """
        ...

    def download(self, path: str) -> bytes:
        """Read a file from /workspace; links, FIFOs and devices are refused.

        Raises:
            UnsafePathError, NotFoundError, FileTypeError, QuotaExceededError.
        """
        ...

    def read_text(self, path: str, max_bytes: int = 65536) -> str:
        """A text preview of a workspace file for a model: at most `max_bytes`, PII tokenized.

        Raises:
            UnsafePathError, NotFoundError, FileTypeError.
        """
        ...

    def list_files(self, path: str = "") -> list[FileEntry]:
        """/workspace (or a folder in it), recursively, without following links."""
        ...

    def delete_file(self, path: str) -> None: ...

    def save_skill(self, path: str, data: bytes) -> None:
        """Save a file into the owner's /skills, which outlives the session.

        Raises:
            UnsafePathError, FileTypeError, QuotaExceededError.
        """
        ...

    def read_skill(self, path: str) -> bytes: ...

    def list_skills(self) -> list[FileEntry]: ...

    def delete_skill(self, path: str) -> None: ...

    def search_tools(
        self, query: str = "", detail: str = "summary", limit: int = 20
    ) -> list[ToolInfo]:
        """The MCP tools this session may call; `detail` is 'name', 'summary' or 'schema'."""
        ...

    def close(self) -> None:
        """End the session and remove its workspace. Closing a closed session does nothing."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class AsyncSessionAPI(Protocol):
    """`SessionAPI` for asyncio: the same methods and errors, awaited."""

    @property
    def id(self) -> str: ...

    @property
    def owner(self) -> str: ...

    async def run(
        self, code: str, timeout: float | None = None, env: dict[str, str] | None = None
    ) -> RunResult: ...

    async def run_command(
        self,
        command: list[str] | str,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
    ) -> RunResult: ...

    # Not `async def`: an async generator is called without await and returns the iterator.
    def stream(
        self, code: str, timeout: float | None = None, env: dict[str, str] | None = None
    ) -> AsyncIterator[OutputEvent | RunResult]: ...

    async def upload(self, path: str, data: bytes) -> None: ...

    async def download(self, path: str) -> bytes: ...

    async def read_text(self, path: str, max_bytes: int = 65536) -> str: ...

    async def list_files(self, path: str = "") -> list[FileEntry]: ...

    async def delete_file(self, path: str) -> None: ...

    async def save_skill(self, path: str, data: bytes) -> None: ...

    async def read_skill(self, path: str) -> bytes: ...

    async def list_skills(self) -> list[FileEntry]: ...

    async def delete_skill(self, path: str) -> None: ...

    async def search_tools(
        self, query: str = "", detail: str = "summary", limit: int = 20
    ) -> list[ToolInfo]: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


__all__ = ["AsyncSessionAPI", "SessionAPI", "ToolInfo"]
