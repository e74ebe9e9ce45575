"""The open sessions of one controller, with their caps checked and taken in one step."""

from __future__ import annotations

import threading
from typing import Generic, Protocol, TypeVar

from sandbox.exceptions import (
    InvalidInputError,
    NotFoundError,
    SessionClosedError,
    TooManySessionsError,
)


class _Owned(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def owner(self) -> str: ...


S = TypeVar("S", bound=_Owned)


class SessionRegistry(Generic[S]):
    """Sessions by id. A place is reserved (caps checked and taken under one lock) before a
    session is built, so parallel opens can never pass a cap together."""

    def __init__(self, per_owner: int, total: int) -> None:
        self._per_owner, self._total = per_owner, total
        self._lock = threading.Lock()
        self._sessions: dict[str, S] = {}
        self._reserved: dict[str, str] = {}  # session id -> owner, while being built
        self._closed = False

    def reserve(self, owner: str, session_id: str) -> None:
        """Take a place for a session about to be built.

        Raises:
            TooManySessionsError: the owner or the controller is at its cap.
            InvalidInputError: that id is open or being opened.
            SessionClosedError: the registry is closed.
        """
        with self._lock:
            if self._closed:
                raise SessionClosedError("orchestrator is closed")
            if session_id in self._sessions or session_id in self._reserved:
                raise InvalidInputError(f"session {session_id!r} is already open")
            owners = [s.owner for s in self._sessions.values()] + list(self._reserved.values())
            if sum(o == owner for o in owners) >= self._per_owner:
                raise TooManySessionsError(f"at most {self._per_owner} open sessions per owner")
            if len(owners) >= self._total:
                raise TooManySessionsError(f"at most {self._total} open sessions in total")
            self._reserved[session_id] = owner

    def fill(self, session: S) -> None:
        """Put the built session in its reserved place."""
        with self._lock:
            self._reserved.pop(session.id, None)
            self._sessions[session.id] = session

    def cancel(self, session_id: str) -> None:
        with self._lock:
            self._reserved.pop(session_id, None)

    def get(self, session_id: str) -> S:
        """Raises NotFoundError when no open session has that id."""
        with self._lock:
            try:
                return self._sessions[session_id]
            except KeyError:
                raise NotFoundError(f"no open session {session_id!r:.80}") from None

    def owned(self, owner: str, session_id: str) -> S:
        """The session if `owner` owns it. Another owner's session is reported exactly like a
        missing one, so ids cannot be probed.

        Raises:
            NotFoundError: no such session for this owner.
        """
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None or session.owner != owner:
            raise NotFoundError("no such session")
        return session

    def ids(self) -> set[str]:
        """Ids of the open sessions and of those being opened."""
        with self._lock:
            return set(self._sessions) | set(self._reserved)

    def all(self, owner: str | None = None) -> list[S]:
        with self._lock:
            return [s for s in self._sessions.values() if owner is None or s.owner == owner]

    def remove(self, session: S) -> None:
        with self._lock:
            if self._sessions.get(session.id) is session:
                del self._sessions[session.id]

    def close(self) -> bool:
        """Refuse new sessions from now on; False if it was closed already."""
        with self._lock:
            was, self._closed = self._closed, True
            return not was
