"""A session's token vault, encrypted at rest.

Each session derives its own key from the deployment's master secret (HKDF-SHA256, salted
with the session id, labelled with the master key's id), so rotating the master key affects
new sessions only and a retired key makes old vaults unreadable. Values are stored as
AES-GCM ciphertexts whose associated data binds them to their session and token: a record
moved to another session, or with a flipped bit, fails to decrypt. The value → token index
holds keyed HMACs, never plaintext. Dropping the vault (and its key) crypto-shreds it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sandbox.exceptions import SandboxError


class VaultError(SandboxError, ValueError):
    """A vault record could not be decrypted (tampered, moved, or its key retired)."""


class MasterKeys:
    """The deployment's master secrets by key id; one of them is current for new sessions."""

    def __init__(self, keys: dict[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"current key id {current!r} is not among the keys")
        if any(len(k) < 32 for k in keys.values()):
            raise ValueError("master keys must be at least 32 bytes")
        self._keys = dict(keys)
        self.current = current

    def retire(self, kid: str) -> None:
        if kid == self.current:
            raise ValueError("cannot retire the current key")
        self._keys.pop(kid, None)

    def derive(self, kid: str, session: str) -> bytes:
        try:
            master = self._keys[kid]
        except KeyError:
            raise VaultError(f"master key {kid!r} is retired") from None
        return HKDF(
            algorithm=hashes.SHA256(),
            length=64,
            salt=session.encode(),
            info=b"sbx-pii-vault:" + kid.encode(),
        ).derive(master)


class Vault:
    def __init__(self, keys: MasterKeys, session: str) -> None:
        self.session = session
        self.kid = keys.current
        self._keys = keys
        material = keys.derive(self.kid, session)
        self._aead = AESGCM(material[:32])
        self._mac_key = material[32:]
        self._lock = threading.Lock()
        self._by_mac: dict[bytes, str] = {}
        self._records: dict[str, tuple[bytes, bytes]] = {}
        self._counters: dict[str, int] = {}

    def _aad(self, token: str) -> bytes:
        return f"{self.kid}|{self.session}|{token}".encode()

    def token_for(self, entity: str, original: str) -> str:
        """The session's token for a value: the same text always gets the same token.

        Keyed on the exact text, not a normalized form, so detokenizing gives back exactly
        what was there ('Alice@Example.COM' and 'alice@example.com' are two tokens)."""
        mac = hmac.new(self._mac_key, f"{entity}\0{original}".encode(), hashlib.sha256).digest()
        with self._lock:
            token = self._by_mac.get(mac)
            if token is None:
                n = self._counters[entity] = self._counters.get(entity, 0) + 1
                token = f"[{entity}_{n}]"
                nonce = os.urandom(12)
                self._records[token] = (
                    nonce,
                    self._aead.encrypt(nonce, original.encode(), self._aad(token)),
                )
                self._by_mac[mac] = token
            return token

    def value_for(self, token: str) -> str | None:
        """The original value behind one of this session's tokens, or None if it is not ours.

        Raises:
            VaultError: the record does not decrypt (tampered, moved, or its key is retired).
        """
        record = self._records.get(token)
        if record is None:
            return None
        # Re-derive: a retired master key must make old records unreadable, not merely unused.
        material = self._keys.derive(self.kid, self.session)
        try:
            return AESGCM(material[:32]).decrypt(record[0], record[1], self._aad(token)).decode()
        except InvalidTag:
            raise VaultError(f"vault record for {token} failed authentication") from None

    def __len__(self) -> int:
        return len(self._records)

    def destroy(self) -> None:
        """Forget every record and the key that could read them."""
        with self._lock:
            self._records.clear()
            self._by_mac.clear()
            self._aead = AESGCM(os.urandom(32))
            self._mac_key = os.urandom(32)
