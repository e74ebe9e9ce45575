"""Where the box lives. `base` is the contract; each other module is one backend.

A backend is chosen by its pydantic config, told apart by `type`:

    make_backend(DockerBackendConfig(base_url=...))                     # the default
    make_backend(LocalProcessBackendConfig(unsafe_no_isolation=True))   # no isolation: tests, dev

Importing this package imports no engine SDK: `make_backend` imports `docker` only when a
Docker backend is made.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Discriminator, Tag

from sandbox.backends.base import Backend
from sandbox.backends.docker_config import DockerBackendConfig
from sandbox.backends.local import (
    LocalProcessBackend,
    LocalProcessBackendConfig,
    UnsafeBackendError,
)


def _backend_type(value: object) -> str:
    # Without a `type`, a config is Docker's: SANDBOX_BACKEND__BASE_URL alone must work.
    if isinstance(value, dict):
        return str(value.get("type", "docker"))
    return str(getattr(value, "type", "docker"))


BackendConfig = Annotated[
    Annotated[DockerBackendConfig, Tag("docker")]
    | Annotated[LocalProcessBackendConfig, Tag("local")],
    Discriminator(_backend_type),
]
"""Any backend's config; `type` says which ("docker", the default, or "local")."""


def make_backend(config: BackendConfig) -> Backend:
    """The backend a config describes.

    Raises:
        BackendUnavailableError: no Docker engine answers (the client asks it for its API
            version at once).
        UnsafeBackendError: a local backend without `unsafe_no_isolation=True`.
    """
    if isinstance(config, LocalProcessBackendConfig):
        return LocalProcessBackend(config)
    from sandbox.backends.docker import DockerBackend

    return DockerBackend(config)


__all__ = [
    "Backend",
    "BackendConfig",
    "DockerBackendConfig",
    "LocalProcessBackend",
    "LocalProcessBackendConfig",
    "UnsafeBackendError",
    "make_backend",
]
