"""The `mcpServers` JSON format MCP clients already use, validated, with servers per owner.

    {
      "mcpServers": {                       the deployment's servers, seen by every owner
        "mailer": {"command": "python", "args": ["mailer.py"]},           one process per owner
        "docs":   {"url": "https://docs.example/mcp", "shared": true}     one for all owners
      },
      "owners": {                           servers only that owner sees and calls
        "alice": {"mcpServers": {"crm": {"command": "crm", "env": {"TOKEN": "${secret:CRM}"}}}}
      }
    }

Every server runs once per owner (its own stdio process, or its own HTTP connection with
credentials resolved for that owner) unless the deployment marks it `"shared": true`, which
it should do only for a server that holds no tenant data. `${owner}` in args, env, cwd, url
or headers is the owner's id, so a server that keeps data on disk gets a place per owner
(`"args": ["--db", "/var/lib/mailer/${owner}.db"]`); a shared server has no owner to fill
it with. An owner's own servers are
declared by the operator, here: a server entry is a command the controller runs, so tenants
never write one. A server name means one server across the deployment (policy rules name it),
so an owner's server may not reuse the name of a deployment server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sandbox.exceptions import InvalidInputError
from sandbox.models import ID_PATTERN


class StdioServer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["stdio"] = "stdio"
    command: str
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    timeout_s: float = Field(30.0, gt=0, le=600)
    shared: bool = False
    """One process serves every owner; by default each owner gets its own."""


class HttpServer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["http", "streamable-http", "streamableHttp"] = "http"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(30.0, gt=0, le=600)
    shared: bool = False
    """One connection (the deployment's credentials) serves every owner; by default each owner
    gets its own, with headers resolved from that owner's secrets."""


ServerSpec = StdioServer | HttpServer
OWNER_REF = "${owner}"
DEPLOYMENT = ".deployment"
"""What `${owner}` becomes for the deployment's own connection (the one listing a server's
tools at start): no owner id can be it."""


def fill_owner(text: str, owner: str | None) -> str:
    """`text` with `${owner}` replaced by the owner's id (DEPLOYMENT for None)."""
    return text.replace(OWNER_REF, owner if owner is not None else DEPLOYMENT)


def _pick_transport(data: object) -> object:
    # An entry with a url is remote, one with a command is stdio; say so explicitly.
    if isinstance(data, dict) and isinstance(data.get("mcpServers"), dict):
        for entry in data["mcpServers"].values():
            if isinstance(entry, dict) and "type" not in entry:
                entry["type"] = "http" if "url" in entry else "stdio"
    return data


class OwnerServers(BaseModel):
    """One owner's own servers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    servers: dict[str, ServerSpec] = Field(alias="mcpServers", default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _transport(cls, data: object) -> object:
        return _pick_transport(data)

    @model_validator(mode="after")
    def _not_shared(self) -> OwnerServers:
        for name, spec in self.servers.items():
            if spec.shared:
                raise ValueError(f"{name!r} serves one owner only; it cannot be shared")
        return self


class McpConfig(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    servers: dict[str, ServerSpec] = Field(alias="mcpServers")
    owners: dict[str, OwnerServers] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _transport(cls, data: object) -> object:
        return _pick_transport(data)

    @model_validator(mode="after")
    def _owners(self) -> McpConfig:
        for name, spec in self.servers.items():
            if spec.shared and OWNER_REF in spec.model_dump_json():
                raise ValueError(f"{name!r} is shared: it has no owner to fill {OWNER_REF} with")
        for owner, own in self.owners.items():
            if not ID_PATTERN.fullmatch(owner):
                raise ValueError(f"owner ids match {ID_PATTERN.pattern}, got {owner!r:.80}")
            clash = sorted(set(own.servers) & set(self.servers))
            if clash:
                raise ValueError(f"owner {owner!r} declares {clash}, already deployment servers")
        return self

    def spec(self, server: str, owner: str | None) -> tuple[ServerSpec, bool] | None:
        """The entry `owner` reaches under that name, and whether it is the owner's own."""
        if server in self.servers:
            return self.servers[server], False
        own = self.owners.get(owner) if owner is not None else None
        if own is not None and server in own.servers:
            return own.servers[server], True
        return None


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
