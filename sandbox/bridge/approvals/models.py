"""What an approval is, the settings approvals follow, and the argument summary a person
reviews (shared by the broker, the surfaces and the client)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from sandbox.exceptions import RateLimitedError

Status = Literal["pending", "approved", "denied", "expired", "withdrawn"]
MAX_REASON = 500
_MAX_ARG_KEYS = 32
_MAX_ARG_CHARS = 256


class ApprovalSettings(BaseModel):
    """Approvals of tool calls (`SANDBOX_APPROVALS__*`)."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(300.0, gt=0, le=86400)
    """How long a call waits for a decision; then it is denied as expired. The run's own
    timeout keeps counting meanwhile, and a run that ends first withdraws its approvals."""
    max_pending_per_owner: int = Field(16, ge=1, le=10_000)
    max_pending: int = Field(256, ge=1, le=100_000)
    """Approvals waiting at once, per owner and in all; past either, a call that needs one is
    refused at once (`ToolRateLimitError` in the box)."""
    webhook_url: str | None = Field(None, pattern=r"^https?://", max_length=2048)
    """POSTed every approval event (JSON, signed when `webhook_secret` is set); a JSON answer
    `{"decision": "approve"|"deny", "reason": "..."}` to a requested one decides it."""
    webhook_secret: SecretStr | None = None
    """HMAC-SHA256 key of the `X-Sandbox-Signature` header (over `<timestamp>.<body>`)."""
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    webhook_queue: int = Field(256, ge=1, le=100_000)
    """Events waiting for the webhook; past it further ones are dropped (and counted)."""


class Approval(BaseModel):
    """One call waiting for (or past) a decision."""

    model_config = ConfigDict(frozen=True)

    id: str
    owner: str
    session: str
    exec_id: str
    server: str
    tool: str
    arguments: dict[str, Any]
    """As the box sent them (PII as tokens), cut short: long strings, and nested values
    rendered as JSON text, end in '…'."""
    reason: str
    """Why it needs approval: 'profile requires approval (mailer.send_*)', or the policy's."""
    status: Status = "pending"
    created_at: float
    expires_at: float
    """Unix times. A run that ends first withdraws the approval sooner."""
    decided_by: str | None = None
    decision_reason: str | None = None


class ApprovalLimitError(RateLimitedError):
    """Too many approvals are already pending for this owner, or in all."""

    code = "too_many_approvals"


def summarize(args: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as a person reviews them: at most 32 keys, strings of at most 256
    characters, nested values as (cut) JSON text. Tokens stay tokens."""
    out: dict[str, Any] = {}
    for i, (key, value) in enumerate(args.items()):
        if i == _MAX_ARG_KEYS:
            out["…"] = f"{len(args) - _MAX_ARG_KEYS} more"
            break
        if value is None or isinstance(value, bool | int | float):
            out[str(key)[:64]] = value
            continue
        text = value if isinstance(value, str) else _json(value)
        cut = len(text) > _MAX_ARG_CHARS
        out[str(key)[:64]] = text[:_MAX_ARG_CHARS] + ("…" if cut else "")
    return out


def _json(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (ValueError, RecursionError):
        return str(value)


def digest(args: Mapping[str, Any]) -> str:
    """The arguments' digest for the trail: proves what was asked without holding it."""
    return hashlib.sha256(_json(dict(args)).encode("utf-8", "replace")).hexdigest()
