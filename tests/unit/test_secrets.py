"""Encrypted upstream credentials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.exceptions import InvalidInputError, NotFoundError
from sandbox.secrets import SecretError, SecretStore, master_key


def store(tmp_path: Path, key: bytes = b"k" * 32) -> SecretStore:
    return SecretStore(tmp_path / "secrets.json", key)


def test_a_secret_round_trips_and_is_never_stored_in_clear(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.set("crm_token", "tok-1234567890-abcdef")
    assert s.get("crm_token") == "tok-1234567890-abcdef"
    assert "tok-1234567890" not in (tmp_path / "secrets.json").read_text()
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert s.names() == ["crm_token"]


def test_references_are_resolved_and_unknown_ones_refused(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.set("a", "1")
    assert s.resolve("Bearer ${secret:a}; plain ${x}") == "Bearer 1; plain ${x}"
    with pytest.raises(NotFoundError):
        s.resolve("${secret:missing}")


def test_the_wrong_key_or_a_moved_record_fails_cleanly(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.set("a", "one")
    s.set("b", "two")
    with pytest.raises(SecretError):
        store(tmp_path, b"other-key-" * 4).get("a")
    data = json.loads((tmp_path / "secrets.json").read_text())
    data["secrets"]["b"] = data["secrets"]["a"]  # swap a record under another name
    (tmp_path / "secrets.json").write_text(json.dumps(data))
    with pytest.raises(SecretError):
        s.get("b")


def test_rotation_re_encrypts_under_the_new_key(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.set("a", "value")
    s.rotate(b"n" * 32)
    assert store(tmp_path, b"n" * 32).get("a") == "value"
    with pytest.raises(SecretError):
        store(tmp_path, b"k" * 32).get("a")


def test_bad_names_and_short_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        store(tmp_path).set("../x", "v")
    with pytest.raises(InvalidInputError):
        store(tmp_path, b"short")


def test_without_a_configured_key_one_is_kept_in_the_data_dir(tmp_path: Path) -> None:
    first = master_key(None, tmp_path)
    assert first == master_key(None, tmp_path) and len(first) >= 32
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert master_key("configured-secret", tmp_path) == b"configured-secret"
