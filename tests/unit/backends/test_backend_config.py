"""Choosing a backend from settings: the typed `backend` field and make_backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from sandbox import Settings
from sandbox.backends import (
    DockerBackendConfig,
    LocalProcessBackend,
    LocalProcessBackendConfig,
    make_backend,
)
from sandbox.exceptions import BackendUnavailableError


@pytest.fixture(autouse=True)
def _no_sandbox_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SANDBOX_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env file


def test_the_default_backend_is_docker_with_the_sdks_usual_address() -> None:
    settings = Settings()
    assert settings.backend == DockerBackendConfig()
    assert settings.backend.base_url is None and settings.docker_host is None


def test_docker_host_fills_the_docker_backends_address() -> None:
    settings = Settings(docker_host="unix:///run/other.sock")
    assert settings.backend == DockerBackendConfig(base_url="unix:///run/other.sock")


def test_a_base_url_alone_is_a_docker_backend_and_shows_as_docker_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDBOX_BACKEND__BASE_URL", "tcp://engine:2375")
    settings = Settings()
    assert settings.backend == DockerBackendConfig(base_url="tcp://engine:2375")
    assert settings.docker_host == "tcp://engine:2375"


def test_docker_host_and_base_url_that_disagree_are_refused() -> None:
    with pytest.raises(ValidationError, match="disagree"):
        Settings(docker_host="unix:///a.sock", backend={"base_url": "unix:///b.sock"})


def test_the_local_backend_is_chosen_by_environment_and_runs_the_local_image(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SANDBOX_BACKEND__TYPE", "local")
    monkeypatch.setenv("SANDBOX_BACKEND__UNSAFE_NO_ISOLATION", "true")
    monkeypatch.setenv("SANDBOX_BACKEND__STATE_DIR", str(tmp_path / "state"))
    settings = Settings()
    assert settings.backend == LocalProcessBackendConfig(
        unsafe_no_isolation=True, state_dir=tmp_path / "state"
    )
    assert settings.image == "local"
    backend = make_backend(settings.backend)
    try:
        assert isinstance(backend, LocalProcessBackend)
        assert backend.image_exists(settings.image)
    finally:
        backend.close()


def test_an_unknown_backend_type_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_BACKEND__TYPE", "kubernetes")
    with pytest.raises(ValidationError):
        Settings()


def test_a_docker_backend_with_no_engine_behind_it_raises_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailableError):
        make_backend(DockerBackendConfig(base_url="unix:///nonexistent/docker.sock"))


def test_settings_and_backend_configs_import_no_docker() -> None:
    code = (
        "import sys, sandbox.settings, sandbox.backends; "
        "sandbox.backends.make_backend(sandbox.backends.LocalProcessBackendConfig("
        "unsafe_no_isolation=True)).close(); "
        "print('docker' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
