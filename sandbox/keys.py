"""API keys: each bound to one owner, shown once, stored only as a SHA-256 digest.

Key format: `sbx_<id>_<secret>`; the id (12 hex digits) finds the record, the digest of the
whole key is compared with `hmac.compare_digest`. An unknown id costs the same comparison.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sandbox.exceptions import NotFoundError
from sandbox.models import validate_id

_KEY = re.compile(r"^sbx_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
_DUMMY = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    owner: str
    digest: str
    created: float
    revoked: float | None = None
    profiles: list[str] | None = None
    """Policy profiles this key may open sessions with; None: any."""

    def __repr__(self) -> str:  # never show the digest
        return f"ApiKey(id={self.id!r}, owner={self.owner!r}, revoked={self.revoked is not None})"


class KeyStore:
    """Keys in a JSON file (mode 0600), rewritten atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._mtime = -1.0
        self._load()

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime != self._mtime:
            data = json.loads(self.path.read_text())
            self._keys = {k["id"]: ApiKey(**k) for k in data.get("keys", [])}
            self._mtime = mtime

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"keys": [asdict(k) for k in self._keys.values()]}, fh, indent=1)
        os.replace(tmp, self.path)
        self._mtime = self.path.stat().st_mtime

    def create(self, owner: str, profiles: list[str] | None = None) -> tuple[ApiKey, str]:
        """A new key for `owner`; the secret is returned here and never again.

        Raises:
            InvalidInputError: a bad owner id.
        """
        validate_id(owner, "owner")
        key_id = secrets.token_hex(6)
        secret = f"sbx_{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(
            key_id,
            owner,
            hashlib.sha256(secret.encode()).hexdigest(),
            time.time(),
            profiles=profiles,
        )
        with self._lock:
            self._load()
            self._keys[key_id] = record
            self._save()
        return record, secret

    def verify(self, presented: str) -> ApiKey | None:
        """The live key matching `presented`, else None (same cost either way)."""
        match = _KEY.fullmatch(presented or "")
        with self._lock:
            self._load()
            record = self._keys.get(match.group(1)) if match else None
        digest = hashlib.sha256((presented or "").encode("utf-8", "surrogatepass")).hexdigest()
        ok = hmac.compare_digest(record.digest if record else _DUMMY, digest)
        return record if ok and record is not None and record.revoked is None else None

    def list(self) -> list[ApiKey]:
        with self._lock:
            self._load()
            return sorted(self._keys.values(), key=lambda k: k.created)

    def revoke(self, key_id: str) -> None:
        """Raises NotFoundError for an unknown id."""
        with self._lock:
            self._load()
            record = self._keys.get(key_id)
            if record is None:
                raise NotFoundError(f"no key {key_id!r:.40}")
            self._keys[key_id] = ApiKey(
                record.id, record.owner, record.digest, record.created, time.time(), record.profiles
            )
            self._save()
