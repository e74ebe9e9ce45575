"""Request and response bodies of the HTTP API (extra fields are refused at the boundary)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from sandbox.core.budget import MAX_BUDGET, MIN_BUDGET


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_s: float | None = Field(None, gt=0, le=7 * 86400)
    idle_s: float | None = Field(None, gt=0, le=86400)
    tools: list[Annotated[str, Field(max_length=200)]] | None = Field(None, max_length=256)
    profile: str | None = Field(None, max_length=64)
    """None: 'default', or the key's first profile when it may not use 'default'."""


Budget = Annotated[
    int | None,
    Field(
        ge=MIN_BUDGET,
        le=MAX_BUDGET,
        description="Characters of output for a model: the result keeps the start and end of "
        "stdout and stderr within it, with a marker of what was left out and where the whole "
        "stream is saved (`outputs`). Omitted: the whole output (up to the output cap).",
    ),
]


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=1024 * 1024)
    timeout: float | None = Field(None, gt=0)
    env: dict[str, str] | None = None
    budget: Budget = None


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: list[str] | str = Field(max_length=1024)
    timeout: float | None = Field(None, gt=0)
    env: dict[str, str] | None = None
    budget: Budget = None


class ApprovalDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "deny"]
    reason: str = Field("", max_length=500)
    """Shown to the code in the box when denied (PII in it is tokenized first)."""


class PreviewResponse(BaseModel):
    path: str
    text: str
