"""The Docker backend's settings, apart from docker.py so that naming them imports no docker."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DockerBackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["docker"] = "docker"
    base_url: str | None = None
    """None: the docker SDK's usual resolution (DOCKER_HOST, else the local socket)."""
    timeout_s: float = Field(60.0, gt=0)
    pool_size: int = Field(32, ge=1)
