"""Credentials for upstream MCP servers, encrypted at rest, resolved only in the controller.

The store is a JSON file of AES-GCM ciphertexts (associated data: name and key id) under a key
derived from the deployment secret (`SANDBOX_SECRET_KEY`; without it, a random one kept in
`<data_dir>/secret.key`, mode 0600: set the variable from your secrets manager instead).
An `mcpServers` config refers to them as `${secret:NAME}` in env, headers or args; only the
controller's upstream connections see values. Sandboxes, logs, audit records and API
responses never do.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets as _random
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sandbox.exceptions import InvalidInputError, NotFoundError, SandboxError

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
    def __init__(self, path: Path, master: bytes) -> None:
        if len(master) < 16:
            raise InvalidInputError("the deployment secret must be at least 16 bytes")
        self.path, self._master = path, master
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        return dict(json.loads(self.path.read_text()).get("secrets", {}))

    def _save(self, entries: dict[str, dict[str, str]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"secrets": entries}, fh, indent=1)
        os.replace(tmp, self.path)

    def set(self, name: str, value: str, kid: str = "s1") -> None:
        """Raises InvalidInputError for a bad name."""
        if not _NAME.fullmatch(name):
            raise InvalidInputError(f"secret names match {_NAME.pattern}")
        nonce = os.urandom(12)
        ct = _derive(self._master, kid).encrypt(nonce, value.encode(), f"{name}|{kid}".encode())
        with self._lock:
            entries = self._load()
            entries[name] = {
                "kid": kid,
                "nonce": base64.b64encode(nonce).decode(),
                "ct": base64.b64encode(ct).decode(),
            }
            self._save(entries)

    def get(self, name: str) -> str:
        """Raises NotFoundError (no such secret) or SecretError (tampered, wrong key)."""
        entry = self._load().get(name)
        if entry is None:
            raise NotFoundError(f"no secret named {name!r:.64}")
        try:
            plain = _derive(self._master, entry["kid"]).decrypt(
                base64.b64decode(entry["nonce"]),
                base64.b64decode(entry["ct"]),
                f"{name}|{entry['kid']}".encode(),
            )
        except (InvalidTag, KeyError, ValueError):
            raise SecretError(
                f"secret {name!r:.64} cannot be decrypted with this deployment's key"
            ) from None
        return plain.decode()

    def names(self) -> list[str]:
        return sorted(self._load())

    def delete(self, name: str) -> None:
        with self._lock:
            entries = self._load()
            if entries.pop(name, None) is None:
                raise NotFoundError(f"no secret named {name!r:.64}")
            self._save(entries)

    def rotate(self, new_master: bytes) -> None:
        """Re-encrypt every secret under a key derived from `new_master`."""
        values = {name: self.get(name) for name in self.names()}
        self._master = new_master
        for name, value in values.items():
            self.set(name, value, kid="s" + _random.token_hex(4))

    def resolve(self, text: str) -> str:
        """`text` with every ${secret:NAME} replaced. Raises NotFoundError, SecretError."""
        return REFERENCE.sub(lambda m: self.get(m.group(1)), text)
