"""Ids, limits, settings, the seccomp profile and the launch spec: pure logic, no engine."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from sandbox import policy
from sandbox.exceptions import InvalidInputError
from sandbox.images import image_tag, images_dir
from sandbox.models import Limits, validate_id
from sandbox.settings import Settings

IMAGES = Path(__file__).parents[2] / "images"


@pytest.mark.parametrize("good", ["alice", "A-b_9", "x" * 64])
def test_valid_ids_pass(good: str) -> None:
    assert validate_id(good, "owner") == good


@pytest.mark.parametrize("bad", ["", "x" * 65, "../x", "a b", "a/b", "é", "a\x00", "a\n"])
def test_invalid_ids_are_rejected_with_a_typed_error(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        validate_id(bad, "owner")


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValidationError):
        Limits(timeout_s=0)
    with pytest.raises(ValidationError):
        Limits(memory_mb=1)
    with pytest.raises(ValidationError):
        Limits(unknown=1)  # type: ignore[call-arg]


def test_settings_read_the_sandbox_prefix_and_nested_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDBOX_CONTROLLER_ID", "ctl-1")
    monkeypatch.setenv("SANDBOX_LIMITS__TIMEOUT_S", "5")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.controller_id == "ctl-1" and s.limits.timeout_s == 5


def test_settings_refuse_a_bad_controller_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_CONTROLLER_ID", "../../x")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_seccomp", IMAGES / "make_seccomp.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_seccomp_profile_matches_its_generator() -> None:
    assert (IMAGES / "seccomp.json").read_text() == _generator().render()


def test_seccomp_profile_denies_by_default_and_never_allows_the_dangerous_calls() -> None:
    profile = json.loads((IMAGES / "seccomp.json").read_text())
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    allowed = {
        n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]
    }
    for name in _generator().DENIED:
        assert name not in allowed, name
    assert not {n for n in allowed if n.startswith("io_uring")}


def test_every_allowed_name_looks_like_a_syscall() -> None:
    profile = json.loads((IMAGES / "seccomp.json").read_text())
    names = [n for r in profile["syscalls"] for n in r["names"]]
    assert all(re.fullmatch(r"_?[a-z][a-z0-9_]*", n) for n in names), names
    assert {"read", "write", "execve", "clone", "socket"} <= set(names)


def test_socket_families_are_allowed_one_rule_each() -> None:
    # runc ORs conditions on one argument within a rule; one value per rule keeps it an allowlist.
    profile = json.loads((IMAGES / "seccomp.json").read_text())
    rules = [r for r in profile["syscalls"] if r["names"] == ["socket"]]
    assert sorted(r["args"][0]["value"] for r in rules) == [1, 2, 10, 16]
    assert all(len(r["args"]) == 1 and r["args"][0]["op"] == "SCMP_CMP_EQ" for r in rules)


def test_launch_spec_mounts_only_workspace_skills_and_the_run_socket(tmp_path: Path) -> None:
    spec = policy.launch_spec(
        image="img",
        limits=Limits(),
        runtime="runc",
        workspace=tmp_path / "w",
        skills=tmp_path / "s",
        channel_dir=tmp_path / "c",
        labels={"a": "b"},
    )
    assert [(m.target, m.read_only) for m in spec.mounts] == [
        ("/workspace", False),
        ("/skills", True),
        ("/run/sbx", True),
    ]
    assert spec.user == "1000:1000" and spec.network == "none"
    assert spec.memory_bytes == 512 * 1024 * 1024 and spec.pids == 128
    assert json.loads(spec.seccomp_profile)["defaultAction"] == "SCMP_ACT_ERRNO"


def test_labels_carry_controller_owner_session_exec_and_a_deadline() -> None:
    labels = policy.labels_for("c", "o", "s", "e", 60, now=1000)
    assert labels == {
        "sbx.managed": "1",
        "sbx.controller": "c",
        "sbx.owner": "o",
        "sbx.session": "s",
        "sbx.exec": "e",
        "sbx.deadline": "1060",
    }


def test_image_tag_follows_the_runtime_and_dockerfile() -> None:
    assert image_tag().startswith("sbx-sandbox:") and images_dir().is_dir()
