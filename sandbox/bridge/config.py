"""The `mcpServers` JSON format MCP clients already use, validated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sandbox.exceptions import InvalidInputError


class StdioServer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["stdio"] = "stdio"
    command: str
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    timeout_s: float = Field(30.0, gt=0, le=600)


class HttpServer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["http", "streamable-http", "streamableHttp"] = "http"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(30.0, gt=0, le=600)


class McpConfig(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    servers: dict[str, StdioServer | HttpServer] = Field(alias="mcpServers")

    @model_validator(mode="before")
    @classmethod
    def _pick_transport(cls, data: object) -> object:
        # An entry with a url is remote, one with a command is stdio; say so explicitly.
        if isinstance(data, dict) and isinstance(data.get("mcpServers"), dict):
            for entry in data["mcpServers"].values():
                if isinstance(entry, dict) and "type" not in entry:
                    entry["type"] = "http" if "url" in entry else "stdio"
        return data


def load_config(source: Path | str | dict[str, object]) -> McpConfig:
    """Read and validate an `mcpServers` config from a path or a dict.

    Raises:
        InvalidInputError: the file is missing, not JSON, or not in the mcpServers format.
    """
    try:
        data = source if isinstance(source, dict) else json.loads(Path(source).read_text())
        return McpConfig.model_validate(data)
    except (OSError, ValueError, ValidationError) as exc:
        raise InvalidInputError(f"bad MCP server config: {exc}") from exc
