"""Deployment settings, read once at the edge (CLI, app factory) and passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.backends import BackendConfig, DockerBackendConfig, LocalProcessBackendConfig
from sandbox.backends.local import LOCAL_IMAGE
from sandbox.bridge.approvals.models import ApprovalSettings
from sandbox.models import Limits, ToolLimits, validate_id
from sandbox.pii.policy import RestoreRule


class PiiFieldRule(BaseModel):
    """What one field of a tool's JSON result holds, e.g. `{"tools": "crm.*", "path":
    "customer.owner", "entity": "PERSON"}`: its whole value becomes one `[PERSON_n]` token."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1, max_length=512)
    """Keys from the result's root (or the root of a JSON text inside it), dot-separated and
    compared like key rules (case, `_`, `-`, camelCase ignored); `*` is any one key, `**` any
    number of them; list items add no step (`customers.name` reaches every customer)."""
    entity: str | None = Field(pattern=r"^[A-Z][A-Z_]{1,30}$")
    """The token's entity name; null marks the field as none of the key-based entities
    (pattern detection of emails, phones... still runs on it)."""
    tools: str = Field("*", min_length=1, max_length=256)
    """Which results: a glob over `server.tool`."""


class PiiSettings(BaseModel):
    """PII tokenization on every path toward the model (on by default)."""

    enabled: bool = True
    entities: list[str] | None = None
    """Which entities to tokenize; None means all of EMAIL, PHONE, CREDIT_CARD, IBAN, US_SSN,
    IP_ADDRESS, SECRET, and PERSON and ADDRESS in structured results (`structured`)."""
    phone_region: str = "US"
    """Region tried first for phone numbers written without a +country code (it decides the
    normalized form of a number several regions could own)."""
    phone_regions: list[str] | None = None
    """Further regions whose national formats count as phone numbers; None: a broad default
    list (sandbox.pii.phones.DEFAULT_REGIONS)."""
    private_ips: bool = False
    """Also tokenize loopback, private and link-local addresses (127/8, 10/8, 172.16/12,
    192.168/16, 169.254/16, 100.64/10, ::1, fc00::/7, fe80::/10). Off: they name machines of
    the user's own network (often the sandbox's), not people, and code needs them verbatim."""
    secret: SecretStr | None = None
    """Master secret (32+ bytes) the session vault keys derive from; None: a random one per
    process (vaults live in memory and die with their session, so nothing needs it later)."""
    key_id: str = "k1"
    previous_secrets: dict[str, SecretStr] = {}
    """Older master secrets by key id, still readable for sessions opened under them."""
    presidio_entities: list[str] | None = None
    """Also tokenize these Presidio entities (e.g. PERSON, LOCATION); needs the `presidio`
    extra and a spaCy model with NER. None: Presidio is not used."""
    presidio_model: str = "en_core_web_lg"
    structured: bool = True
    """In JSON results, tokenize values by what their key or the tool's outputSchema says they
    are: names ([PERSON_n]), street addresses ([ADDRESS_n]), phone, SSN and card numbers."""
    fields: list[PiiFieldRule] = []
    """Field rules per server and tool; they win over key names and schemas."""
    restore_rules: list[RestoreRule] = []
    """Where real values may go beyond the default, which restores a token only into tools of
    the server whose result produced it (sandbox/pii/policy.py); profiles add their own.
    E.g. `[{"entities": ["EMAIL"], "from": "crm.*", "to": "mailer.send_email", "args": ["to"]}]`."""
    vault_entries: int = Field(20_000, ge=1)
    """Distinct values one session's vault may hold; past it, or past `vault_bytes`, a new
    value becomes `[ENTITY_REDACTED]` (audited once per session) and can never be restored."""
    vault_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    """UTF-8 bytes of those values (each entry costs about 450 bytes more in memory)."""


class ApiSettings(BaseModel):
    """Admission rules (every surface: REST, MCP over HTTP and stdio, CLI) and HTTP limits."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = Field(65 * 1024 * 1024, ge=1024)
    """Largest upload (PUT of a file or skill, streamed to disk); larger ones get 413."""
    max_json_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """Largest other request body (JSON, parsed in memory): sessions, runs, /mcp."""
    json_budget_bytes: int = Field(128 * 1024 * 1024, ge=1024)
    """Such bodies all requests may hold at once (one key: a quarter); past it, 503 `busy`."""
    body_timeout_s: float = Field(30.0, gt=0)
    """A body that takes longer than this to arrive gets 408."""
    rate_per_s: float = Field(20.0, gt=0)
    rate_burst: int = Field(40, ge=1)
    runs_per_key: int = Field(4, ge=1)
    runs_total: int = Field(16, ge=1)
    run_queue: int = Field(64, ge=0)
    """Runs waiting for a slot beyond this get 429."""
    run_queue_per_key: int = Field(8, ge=0)
    """Of those waiting runs, at most this many of one key."""
    run_queue_wait_s: float = Field(300.0, gt=0)
    """A run that waited this long for a slot is refused (429) instead."""
    boots_at_once: int | None = Field(None, ge=0)
    """Boxes booting at once, owners taking turns (the fewest in flight first); None: one
    per CPU core; 0: no limit."""
    sessions_per_owner: int = Field(32, ge=1)
    sessions_total: int = Field(1024, ge=1)
    session_ttl_s: float = Field(8 * 3600, gt=0)
    session_idle_s: float = Field(3600, gt=0)
    max_connections: int = Field(512, ge=8)
    docs: bool = True
    """Serve /docs (Swagger UI, its assets served by this server: no CDN) and /openapi.json;
    false serves neither."""
    idempotency_ttl_s: float = Field(600.0, gt=0)
    """How long a POST's result answers retries with its Idempotency-Key."""
    idempotency_bytes: int = Field(256 * 1024 * 1024, ge=1024 * 1024)
    """Disk for those results (never memory); past it the oldest answer 410 instead."""

    def boots_limit(self) -> int:
        """Boxes booting at once (0: no limit)."""
        if self.boots_at_once is not None:
            return self.boots_at_once
        return os.cpu_count() or 1


class OutputSettings(BaseModel):
    """What a model is shown of a run, a file or a listing (MCP tools; the HTTP API when asked)."""

    model_config = ConfigDict(extra="forbid")

    budget: int = Field(20_000, ge=2_000, le=1_000_000)
    """Characters of a run's streams together (head and tail kept), or of a file's text, in
    one result for a model; about 5,000 tokens."""
    keep_runs: int = Field(10, ge=0, le=1000)
    """Runs whose long output stays saved in /workspace/.outputs (0: none is saved)."""
    page_size: int = Field(200, ge=10, le=10_000)
    """Entries of a listing in one result for a model, unless it asks for fewer."""
    image_notes: str = Field("", max_length=2000)
    """What the sandbox image offers, as the tool descriptions tell models ("Python 3.12 with
    numpy, pandas and matplotlib"); empty: the stock image's (the standard library only)."""
    mcp_structured: bool = False
    """MCP tools answer with typed `structuredContent` (and an `outputSchema`) and a one-line
    text, instead of plain text only. Clients differ in which of the two reaches the model:
    only turn it on for clients that pass `structuredContent` on (docs/architecture.md)."""


class Settings(BaseSettings):
    """`SANDBOX_*` environment variables or a `.env` file; nested limits as `SANDBOX_LIMITS__TIMEOUT_S`."""

    model_config = SettingsConfigDict(
        env_prefix="SANDBOX_", env_file=".env", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path("/var/lib/sandbox")
    """Workspaces, skills and per-run sockets live here, one folder each, never shared."""
    state_dir: Path | None = None
    """This controller's own files (its lock, audit trail, workspaces, run sockets, generated
    tool code) when not in `data_dir`; skills, secrets and keys stay in `data_dir`, shared.
    Each `sandbox mcp` process takes one under `<data_dir>/mcp/` (sandbox/mcp/stdio.py)."""
    controller_id: str = "default"
    """Labels every container this controller makes; leftovers with it are reaped at start."""
    image: str | None = None
    """Sandbox image to run; None builds (once) and uses the image of this version's runtime
    (with the local backend: its one pseudo image, "local")."""
    base_image: str = "python:3.11-slim"
    """Base for the sandbox image; when it cannot be pulled, one is bootstrapped from Debian."""
    docker_host: str | None = None
    """Engine address; None uses the standard DOCKER_HOST resolution of the docker SDK.
    Kept for compatibility: the same as `backend.base_url` of a Docker backend."""
    backend: BackendConfig = DockerBackendConfig()
    """Where boxes run: `SANDBOX_BACKEND__TYPE=docker` (default) or `local` (host processes,
    NO isolation; also needs `SANDBOX_BACKEND__UNSAFE_NO_ISOLATION=true`)."""
    runtime: Literal["runc", "runsc"] = "runc"
    warm: bool = True
    """Keep the next container of each session started and waiting for its code."""
    workspace_backing: Literal["auto", "tmpfs", "directory"] = "auto"
    """'tmpfs' gives a hard quota (needs root); 'directory' has no hard quota; 'auto' picks."""
    start_timeout_s: float = Field(20.0, gt=0)
    limits: Limits = Limits()
    mcp_config: Path | None = None
    """An `mcpServers` JSON file: their tools become the code API mounted at /servers."""
    tool_limits: ToolLimits = ToolLimits()
    profiles: Path | None = None
    """A JSON file of extra policy profiles (see sandbox/profiles.py); the built-in ones are
    strict, default (these settings' limits and runtime) and data-science."""
    pii: PiiSettings = PiiSettings()
    api: ApiSettings = ApiSettings()
    approvals: ApprovalSettings = ApprovalSettings()
    """Tool calls that wait for a person's decision (profiles' `approval`, the PII policy)."""
    output: OutputSettings = OutputSettings()
    secret_key: SecretStr | None = None
    """The deployment secret upstream credentials are encrypted with (16+ bytes); without it a
    random one is kept in `<data_dir>/secret.key`."""
    audit_log: Path | None = None
    """Where the audit trail goes; None means `<own_dir>/audit.log`."""
    audit_keys: Path | None = None
    """The audit MAC keys (JSON, 0600); None means `<data_dir>/audit-keys.json`. Keep them
    somewhere the log's readers cannot write."""

    @property
    def own_dir(self) -> Path:
        """Where this controller's own files go: `state_dir`, else `data_dir`."""
        return self.state_dir if self.state_dir is not None else self.data_dir

    @model_validator(mode="after")
    def _reconcile_backend(self) -> Settings:
        """docker_host and backend.base_url name one thing; the local backend needs no image build."""
        backend = self.backend
        if isinstance(backend, DockerBackendConfig):
            if backend.base_url is None and self.docker_host is not None:
                self.backend = backend.model_copy(update={"base_url": self.docker_host})
            elif self.docker_host is None:
                self.docker_host = backend.base_url
            elif backend.base_url != self.docker_host:
                raise ValueError(
                    f"docker_host {self.docker_host!r} and backend.base_url "
                    f"{backend.base_url!r} disagree; set only one"
                )
        elif isinstance(backend, LocalProcessBackendConfig) and self.image is None:
            self.image = LOCAL_IMAGE
        return self

    @field_validator("controller_id")
    @classmethod
    def _check_controller_id(cls, value: str) -> str:
        return validate_id(value, "controller_id")
