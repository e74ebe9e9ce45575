"""Credentials for upstream MCP servers, encrypted at rest, resolved only in the controller.

The store is a JSON file of AES-GCM ciphertexts (associated data: name and key id) under a key
derived from the deployment secret (`SANDBOX_SECRET_KEY`; without it, a random one kept in
`<data_dir>/secret.key`, mode 0600: set the variable from your secrets manager instead).
An `mcpServers` config refers to them as `${secret:NAME}` in env, headers or args; only the
controller's upstream connections see values. Sandboxes, logs, audit records and API
responses never do.

An owner may have secrets of their own under the same names (`sandbox secrets set NAME
--owner alice`): that owner's connection to a deployment server takes the owner's value
first, the deployment's otherwise; an owner's own servers take only the owner's values; a
shared server only the deployment's (see sandbox/bridge/pool.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets as _random
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sandbox.exceptions import InvalidInputError, NotFoundError, SandboxError
from sandbox.models import validate_id

REFERENCE = re.compile(r"\$\{secret:([A-Za-z0-9_.-]{1,64})\}")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class SecretError(SandboxError, ValueError):
    """A secret could not be decrypted: tampered with, or the key is not the one it was sealed with."""


def _derive(master: bytes, kid: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"sbx-secrets", info=kid.encode()).derive(
        master
    )
    return AESGCM(key)


def master_key(configured: str | None, data_dir: Path) -> bytes:
    """The deployment secret as bytes: the configured one, else one kept in the data dir."""
    if configured:
        return configured.encode()
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(_random.token_hex(32))
    return path.read_text().strip().encode()


class SecretStore:
    """The deployment's secrets and each owner's, in one file; an owner's are sealed to that
    owner (associated data), so a record moved to another owner does not decrypt."""

    def __init__(self, path: Path, master: bytes) -> None:
        if len(master) < 16:
            raise InvalidInputError("the deployment secret must be at least 16 bytes")
        self.path, self._master = path, master
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"secrets": {}, "owners": {}}
        doc = json.loads(self.path.read_text())
        return {"secrets": dict(doc.get("secrets", {})), "owners": dict(doc.get("owners", {}))}

    def _save(self, doc: dict[str, Any]) -> None:
        doc["owners"] = {o: entries for o, entries in sorted(doc["owners"].items()) if entries}
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1)
        os.replace(tmp, self.path)

    @staticmethod
    def _entries(doc: dict[str, Any], owner: str | None) -> dict[str, dict[str, str]]:
        if owner is None:
            return doc["secrets"]  # type: ignore[no-any-return]  # JSON we wrote
        return doc["owners"].setdefault(owner, {})  # type: ignore[no-any-return]  # as above

    def set(self, name: str, value: str, kid: str = "s1", owner: str | None = None) -> None:
        """Store a secret of the deployment, or of `owner`.

        Raises:
            InvalidInputError: a bad name or owner id.
        """
        if not _NAME.fullmatch(name):
            raise InvalidInputError(f"secret names match {_NAME.pattern}")
        if owner is not None:
            validate_id(owner, "owner")
        nonce = os.urandom(12)
        ct = _derive(self._master, kid).encrypt(nonce, value.encode(), _aad(name, kid, owner))
        with self._lock:
            doc = self._load()
            self._entries(doc, owner)[name] = {
                "kid": kid,
                "nonce": base64.b64encode(nonce).decode(),
                "ct": base64.b64encode(ct).decode(),
            }
            self._save(doc)

    def get(self, name: str, owner: str | None = None) -> str:
        """The deployment's secret, or `owner`'s (never the deployment's in its place).

        Raises:
            NotFoundError: no such secret.
            SecretError: tampered with, moved, or sealed with another key.
        """
        return self._open(self._load(), name, owner)

    def _open(self, doc: dict[str, Any], name: str, owner: str | None) -> str:
        entry = self._entries(doc, owner).get(name)
        if entry is None:
            whose = "" if owner is None else f" for owner {owner!r:.64}"
            raise NotFoundError(f"no secret named {name!r:.64}{whose}")
        try:
            plain = _derive(self._master, entry["kid"]).decrypt(
                base64.b64decode(entry["nonce"]),
                base64.b64decode(entry["ct"]),
                _aad(name, entry["kid"], owner),
            )
        except (InvalidTag, KeyError, ValueError):
            raise SecretError(
                f"secret {name!r:.64} cannot be decrypted with this deployment's key"
            ) from None
        return plain.decode()

    def names(self, owner: str | None = None) -> list[str]:
        """Names of the deployment's secrets, or of `owner`'s."""
        return sorted(self._entries(self._load(), owner))

    def owners(self) -> list[str]:
        """Owners that have secrets of their own."""
        return sorted(o for o, entries in self._load()["owners"].items() if entries)

    def delete(self, name: str, owner: str | None = None) -> None:
        """Raises NotFoundError when there is no such secret."""
        with self._lock:
            doc = self._load()
            if self._entries(doc, owner).pop(name, None) is None:
                raise NotFoundError(f"no secret named {name!r:.64}")
            self._save(doc)

    def rotate(self, new_master: bytes) -> None:
        """Re-encrypt every secret, the owners' too, under a key derived from `new_master`."""
        scopes: list[str | None] = [None, *self.owners()]
        values = {(o, n): self.get(n, o) for o in scopes for n in self.names(o)}
        self._master = new_master
        for (owner, name), value in values.items():
            self.set(name, value, kid="s" + _random.token_hex(4), owner=owner)

    def resolve(self, text: str, owner: str | None = None, *, deployment: bool = True) -> str:
        """`text` with every ${secret:NAME} replaced: `owner`'s secret of that name, else
        (when `deployment`) the deployment's.

        Raises:
            NotFoundError: a referenced secret does not exist for this owner.
            SecretError: it does not decrypt.
        """
        doc = self._load()
        own = doc["owners"].get(owner, {}) if owner is not None else {}

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in own or not deployment:
                return self._open(doc, name, owner)
            return self._open(doc, name, None)

        return REFERENCE.sub(value, text)


def _aad(name: str, kid: str, owner: str | None) -> bytes:
    # Names and owner ids hold no ':' or '|', so a deployment record's data never equals an
    # owner's.
    return (f"{name}|{kid}" if owner is None else f"owner:{owner}:{name}|{kid}").encode()
