"""Shared fixtures. Docker tests label everything with this test run's controller id and
remove whatever carries it at the end, even when a test fails (THREATS K13)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Orchestrator, Settings
from sandbox.backends.base import LABEL_CONTROLLER, LABEL_MANAGED
from sandbox.backends.docker import DockerBackend
from sandbox.exceptions import BackendUnavailableError
from sandbox.images import BOOTSTRAP_TAG, ensure_image

RUN_ID = "t" + secrets.token_hex(6)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path) or "/security/" in str(item.path):
            item.add_marker(pytest.mark.docker)


def _unmount_under(base: Path) -> None:
    """Workspace tmpfs mounts a crashed test left under pytest's temp dir (THREATS K13)."""
    from sandbox.storage import _umount

    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(str(base))), key=len, reverse=True):
        _umount(Path(point))


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    _unmount_under(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def backend() -> Iterator[DockerBackend]:
    try:
        be = DockerBackend()
        be.ping()
    except BackendUnavailableError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and no Docker engine answers: {exc}")
        pytest.skip(f"no Docker engine: {exc}")
    yield be
    for c in be.list_managed({LABEL_MANAGED: "1"}):
        if c.labels.get(LABEL_CONTROLLER, "").startswith(RUN_ID):
            be.remove(c.ref)
    be.close()


@pytest.fixture(scope="session")
def image(backend: DockerBackend) -> str:
    base = "python:3.11-slim" if backend.image_exists("python:3.11-slim") else BOOTSTRAP_TAG
    return ensure_image(backend, base)


@pytest.fixture(scope="session")
def make_settings(image: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "data_dir": tmp_path_factory.mktemp("data"),
            "controller_id": RUN_ID,
            "image": image,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="module")
def orc(make_settings) -> Iterator[Orchestrator]:  # type: ignore[no-untyped-def]
    # One controller per module; each needs its own data dir and controller id.
    settings = make_settings(controller_id=f"{RUN_ID}m{secrets.token_hex(3)}")
    with Orchestrator(settings) as o:
        yield o


@pytest.fixture
def session(orc: Orchestrator) -> Iterator:  # type: ignore[type-arg]
    with orc.session(owner="alice") as s:
        yield s


@pytest.fixture
def canary(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """A nonce planted in a host temp file and in the controller's environment (THREATS canaries)."""
    nonce = secrets.token_hex(12)
    Path("/tmp", f"sbx-canary-{nonce}").write_text(nonce)
    monkeypatch.setenv("SBX_CANARY", nonce)
    return nonce
