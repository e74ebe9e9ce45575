"""The backend contract on LocalProcessBackend (no Docker), and what only it must do."""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.backends import (
    LocalProcessBackend,
    LocalProcessBackendConfig,
    UnsafeBackendError,
    make_backend,
)
from sandbox.backends.base import LABEL_CONTROLLER, ContainerRef, Mount
from sandbox.exceptions import BackendError, NotFoundError, SandboxError
from tests.contract import KILLED, BackendContract, Boxes


@pytest.fixture
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Short: the runtime dials its socket through a path under here (108 bytes at most).
    return Path(tmp_path_factory.mktemp("lb"))


def _backend(state_dir: Path | None) -> LocalProcessBackend:
    return LocalProcessBackend(
        LocalProcessBackendConfig(unsafe_no_isolation=True, state_dir=state_dir)
    )


@pytest.fixture
def contract_backend(state_dir: Path) -> Iterator[LocalProcessBackend]:
    backend = _backend(state_dir)
    yield backend
    for leftover in backend.list_managed({}):
        backend.remove(leftover.ref)
    backend.close()


@pytest.fixture
def contract_image() -> str:
    return "local"


@pytest.fixture
def contract_controller() -> str:
    return "local" + secrets.token_hex(3)


class TestLocalProcessBackendContract(BackendContract):
    pass


MakeBoxes = Callable[[LocalProcessBackend], Boxes]


@pytest.fixture
def make_boxes(tmp_path: Path) -> Iterator[MakeBoxes]:
    made: list[Boxes] = []

    def make(backend: LocalProcessBackend) -> Boxes:
        base = tmp_path / f"b{len(made)}"
        base.mkdir()
        boxes = Boxes(backend, "local", "local" + secrets.token_hex(3), base)
        made.append(boxes)
        return boxes

    yield make
    for boxes in made:
        boxes.close()


def _no_isolation_warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum(
        1
        for r in caplog.records
        if r.levelno == logging.WARNING and "no isolation" in r.getMessage()
    )


def test_the_backend_refuses_to_exist_without_the_explicit_no_isolation_flag() -> None:
    with pytest.raises(UnsafeBackendError) as caught:
        LocalProcessBackend()
    assert isinstance(caught.value, SandboxError) and isinstance(caught.value, PermissionError)
    with pytest.raises(UnsafeBackendError):
        make_backend(LocalProcessBackendConfig())


def test_construction_and_every_start_warn_of_no_isolation(
    state_dir: Path, make_boxes: MakeBoxes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sandbox.backends.local")
    backend = _backend(state_dir)
    assert _no_isolation_warnings(caplog) == 1
    boxes = make_boxes(backend)
    boxes.started()
    boxes.started()
    assert _no_isolation_warnings(caplog) == 3


def test_the_controllers_environment_does_not_leak_into_the_box(
    contract_backend: LocalProcessBackend, make_boxes: MakeBoxes, canary: str
) -> None:
    got = make_boxes(contract_backend).probe(
        "import json, os; print(json.dumps(dict(os.environ)))", env={"FROM_SPEC": "1"}
    )
    assert canary not in json.dumps(got)
    assert set(got) == {
        "PATH",
        "LANG",
        "HOME",
        "TMPDIR",
        "PYTHONDONTWRITEBYTECODE",
        "XDG_CACHE_HOME",
        "MPLCONFIGDIR",
        "FROM_SPEC",
        "SBX_ROOT",
        "SBX_SOCKET",
    }


def test_it_claims_none_of_the_isolation_it_cannot_give(
    contract_backend: LocalProcessBackend,
) -> None:
    not_given = {
        "memory_bytes",
        "cpus",
        "pids",
        "tmp_bytes",
        "tmp_inodes",
        "seccomp_profile",
        "network",
        "runtime",
        "user",
        "hostname",
        "mounts",
    }
    assert not_given.isdisjoint(contract_backend.enforced)


def test_a_built_tag_becomes_a_known_image(
    contract_backend: LocalProcessBackend, make_boxes: MakeBoxes, tmp_path: Path
) -> None:
    assert contract_backend.image_exists("local")
    assert not contract_backend.image_exists("sbx-sandbox:1")
    assert not contract_backend.pull("sbx-sandbox:1")
    said: list[str] = []
    contract_backend.build_image(tmp_path, "Dockerfile", "sbx-sandbox:1", {}, {}, said.append)
    assert contract_backend.image_exists("sbx-sandbox:1") and said
    got = make_boxes(contract_backend).run("print('ok')", image="sbx-sandbox:1")
    assert got.stdout == b"ok\n"


def test_a_mount_target_that_climbs_out_of_the_root_is_refused(
    contract_backend: LocalProcessBackend, make_boxes: MakeBoxes, state_dir: Path
) -> None:
    boxes = make_boxes(contract_backend)
    box = boxes.create()
    bad = dataclasses.replace(
        box.spec, mounts=(*box.spec.mounts, Mount(boxes.skills, "/../../escape", True))
    )
    with pytest.raises(BackendError):
        contract_backend.create(bad)
    assert {p.name for p in state_dir.iterdir()} == {box.ref.id}


def test_a_malformed_container_id_names_nothing(
    contract_backend: LocalProcessBackend, state_dir: Path
) -> None:
    victim = state_dir.parent / "victim"
    victim.mkdir()
    ref = ContainerRef("../victim")
    contract_backend.remove(ref)
    contract_backend.kill(ref)
    with pytest.raises(NotFoundError):
        contract_backend.wait(ref, 0.1)
    assert victim.is_dir()


def test_another_instance_on_the_same_state_dir_finds_and_reaps_the_boxes(
    state_dir: Path, make_boxes: MakeBoxes
) -> None:
    first = _backend(state_dir)
    boxes = make_boxes(first)
    box = boxes.started()
    second = _backend(state_dir)
    mine = {LABEL_CONTROLLER: boxes.controller}
    assert [c.ref for c in second.list_managed(mine)] == [box.ref]
    assert second.wait(box.ref, 0.2) is None
    second.remove(box.ref)
    info = first.wait(box.ref, 10.0)
    assert info is not None and info.exit_code == KILLED
    assert second.list_managed(mine) == [] and first.list_managed(mine) == []
    second.close()
    first.close()


def test_closing_a_backend_with_a_temporary_state_dir_ends_its_boxes(
    make_boxes: MakeBoxes,
) -> None:
    backend = _backend(None)
    boxes = make_boxes(backend)
    box = boxes.started()
    state = backend._state
    assert state.is_dir()
    backend.close()
    # Every end of the channel inside the box closes with it.
    got = box.channel.collect(time.monotonic() + 10.0, 1 << 20, lambda body, reply: None)
    assert not got.timed_out and got.exit_code is None
    assert not state.exists()
