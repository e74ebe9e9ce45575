"""A session's token vault, encrypted at rest.

Each session derives its own key from the deployment's master secret (HKDF-SHA256, salted
with the session id, labelled with the master key's id), so rotating the master key affects
new sessions only and a retired key makes old vaults unreadable. Values are stored as
AES-GCM ciphertexts whose associated data binds them to their session and token: a record
moved to another session, or with a flipped bit, fails to decrypt. The value → token index
holds keyed HMACs, never plaintext. Dropping the vault (and its key) crypto-shreds it.

Each token remembers its entity and its origins: the `server.tool` whose result produced the
value, or a word for values that came from elsewhere (`output`: program output, previews and
anything tokenized without a named origin; `upload`). The same value seen from two tools has
two origins. An origin is not added from a server the value was restored into (a value sent
to `mailer` and echoed back by it is still `crm` data, not `mailer` data).

A vault holds at most `VaultBudget.entries` values and `VaultBudget.bytes` bytes of them.
Past that, a new value is replaced by a redaction marker (`[EMAIL_REDACTED]`) that is not a
token and restores to nothing; values already in the vault keep their tokens. The first
value redacted calls `on_full` once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

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


OUTPUT = "output"
"""The origin of values found in program output, previews, or anywhere no tool is named."""
UPLOAD = "upload"
"""The origin of values found in files the owner uploaded, when a caller says so."""
MAX_ORIGINS = 16
"""Origins kept per token; more only ever narrow what a restore policy allows, never widen."""


@dataclass(frozen=True)
class VaultBudget:
    """How much one session's vault may hold: distinct values, and their UTF-8 bytes."""

    entries: int = 20_000
    bytes: int = 2 * 1024 * 1024


@dataclass(frozen=True)
class TokenInfo:
    """What a vault knows about one token besides its value."""

    entity: str
    origins: tuple[str, ...]


class _Meta:
    __slots__ = ("entity", "origins", "sinks")

    def __init__(self, entity: str, origin: str) -> None:
        self.entity = entity
        self.origins: tuple[str, ...] = (origin,)
        self.sinks: tuple[str, ...] = ()
        """Servers this value was restored into: no origin is taken from them."""

    def add_origin(self, origin: str) -> None:
        if origin in self.origins or len(self.origins) >= MAX_ORIGINS:
            return
        if any(origin.startswith(server + ".") for server in self.sinks):
            return
        self.origins += (origin,)


def redaction(entity: str) -> str:
    """The marker that replaces a value a full vault cannot take ('[EMAIL_REDACTED]')."""
    return f"[{entity}_REDACTED]"


class Vault:
    def __init__(
        self,
        keys: MasterKeys,
        session: str,
        budget: VaultBudget | None = None,
        on_full: Callable[[Vault], None] | None = None,
    ) -> None:
        self.session = session
        self.kid = keys.current
        self._keys = keys
        material = keys.derive(self.kid, session)
        self._aead = AESGCM(material[:32])
        self._mac_key = material[32:]
        self._lock = threading.Lock()
        self._by_mac: dict[bytes, str] = {}
        self._records: dict[str, tuple[bytes, bytes]] = {}  # token -> (nonce, ciphertext)
        self._meta: dict[str, _Meta] = {}
        self._counters: dict[str, int] = {}
        self.budget = budget or VaultBudget()
        self.on_full = on_full
        self.bytes = 0
        """UTF-8 bytes of the values held."""
        self.redacted = 0
        """Values replaced by a redaction marker because the vault was full."""

    def limit(self, budget: VaultBudget, on_full: Callable[[Vault], None] | None = None) -> None:
        """Bound the vault (values already in it stay); `on_full` hears once that it is full."""
        with self._lock:
            self.budget, self.on_full = budget, on_full

    def _aad(self, token: str) -> bytes:
        return f"{self.kid}|{self.session}|{token}".encode()

    def token_for(self, entity: str, original: str, origin: str = "") -> str:
        """The session's token for a value: the same text always gets the same token.

        Keyed on the exact text, not a normalized form, so detokenizing gives back exactly
        what was there ('Alice@Example.COM' and 'alice@example.com' are two tokens). `origin`
        is the `server.tool` whose result held the value ('' counts as `output`). A new value
        that does not fit the budget gets `redaction(entity)` instead of a token."""
        mac = hmac.new(self._mac_key, f"{entity}\0{original}".encode(), hashlib.sha256).digest()
        origin = origin or OUTPUT
        size = len(original.encode())
        with self._lock:
            token = self._by_mac.get(mac)
            if token is not None:
                self._meta[token].add_origin(origin)
                return token
            full = (
                len(self._records) >= self.budget.entries or self.bytes + size > self.budget.bytes
            )
            if not full:
                n = self._counters[entity] = self._counters.get(entity, 0) + 1
                token = f"[{entity}_{n}]"
                nonce = os.urandom(12)
                sealed = self._aead.encrypt(nonce, original.encode(), self._aad(token))
                self._records[token] = (nonce, sealed)
                self._meta[token] = _Meta(entity, origin)
                self._by_mac[mac] = token
                self.bytes += size
                return token
            self.redacted += 1
            first = self.redacted == 1
        if first and self.on_full is not None:
            self.on_full(self)  # outside the lock: it may write an audit record
        return redaction(entity)

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

    def info(self, token: str) -> TokenInfo | None:
        """A token's entity and origins (no value, nothing decrypted), or None if not ours."""
        with self._lock:
            meta = self._meta.get(token)
            return None if meta is None else TokenInfo(meta.entity, meta.origins)

    def restored_into(self, token: str, server: str) -> None:
        """Note that the token's value went to `server`: values it sends back are not taken
        as coming from it (no origin from that server is added to this token)."""
        with self._lock:
            meta = self._meta.get(token)
            if meta is not None and server not in meta.sinks:
                meta.sinks += (server,)

    def __len__(self) -> int:
        return len(self._records)

    def destroy(self) -> None:
        """Forget every record and the key that could read them."""
        with self._lock:
            self._records.clear()
            self._meta.clear()
            self._by_mac.clear()
            self._aead = AESGCM(os.urandom(32))
            self._mac_key = os.urandom(32)
