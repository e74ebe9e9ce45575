"""Per-run callback tokens: minted when a run gets its code, revoked when it ends.

Only SHA-256 digests are stored; lookups compare digests with `hmac.compare_digest`. A token
is bound to one session and one execution, and expires on the server's monotonic clock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_BYTES = 32  # 256 bits
_MAX_TOKEN_CHARS = 128


class TokenRefused(Exception):
    """Why a token was refused; the reason goes to the audit trail, never to the sandbox."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Grant:
    digest: bytes
    session: str
    exec_id: str
    expires: float
    revoked: bool = False


def token_id(token: str) -> str:
    """A short, non-reversible id for logs: the first 8 hex digits of sha256(token)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:8]


class TokenRegistry:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_exec: dict[str, _Grant] = {}
        self._revoked: dict[bytes, float] = {}

    def mint(self, session: str, exec_id: str, ttl_s: float) -> str:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            self._by_exec[exec_id] = _Grant(digest, session, exec_id, self._clock() + ttl_s)
        return token

    def check(self, token: object, session: str, exec_id: str) -> None:
        """Accept the token only for this session's live execution.

        Raises:
            TokenRefused: missing, malformed, unknown, replayed (revoked), expired or misbound.
        """
        if not isinstance(token, str) or not token:
            raise TokenRefused("missing")
        if len(token) > _MAX_TOKEN_CHARS:
            raise TokenRefused("malformed")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            grant = self._by_exec.get(exec_id)
            if grant is not None and hmac.compare_digest(grant.digest, digest):
                if grant.session != session:
                    raise TokenRefused("wrong_session")
                if self._clock() >= grant.expires:
                    raise TokenRefused("expired")
                return
            if digest in self._revoked:
                raise TokenRefused("replayed")
            if any(hmac.compare_digest(g.digest, digest) for g in self._by_exec.values()):
                raise TokenRefused("wrong_run")
        raise TokenRefused("forged")

    def revoke(self, exec_id: str) -> None:
        with self._lock:
            grant = self._by_exec.pop(exec_id, None)
            if grant is not None:
                now = self._clock()
                self._revoked[grant.digest] = now
                # Remember revoked digests for an hour, to tell replays from forgeries in the audit.
                for d, at in list(self._revoked.items()):
                    if now - at > 3600:
                        del self._revoked[d]

    def live(self, session: str | None = None) -> int:
        with self._lock:
            return sum(1 for g in self._by_exec.values() if session in (None, g.session))
