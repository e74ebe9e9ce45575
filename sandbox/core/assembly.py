"""Builds every part of a controller from `Settings`, once, in one place.

The backend, the data directory (locked for this controller), the audit trail, metrics, the
one background event loop, the sandbox image, policy profiles, PII keys, the tool bridge and
admission. If any step fails, what was built so far is closed again.
"""

from __future__ import annotations

import fcntl
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sandbox.audit import AuditKeys, AuditLog
from sandbox.audit_queue import AuditQueue
from sandbox.backends import make_backend
from sandbox.backends.base import Backend
from sandbox.bridge.approvals import ApprovalBroker
from sandbox.bridge.approvals.webhook import ApprovalWebhook
from sandbox.bridge.config import load_config
from sandbox.bridge.endpoint import ToolBridge
from sandbox.core.admission import Admission
from sandbox.core.gate import BootGate
from sandbox.core.loop import BackgroundLoop
from sandbox.core.strays import Strays
from sandbox.exceptions import ControllerBusyError, NotFoundError
from sandbox.images import ensure_image
from sandbox.keys import KeyStore
from sandbox.metrics import Metrics
from sandbox.pii import Detector, FieldRule, FieldRules, MasterKeys, default_recognizers
from sandbox.profiles import Profile, load_profiles
from sandbox.secrets import SecretStore, master_key
from sandbox.settings import PiiSettings, Settings
from sandbox.storage import Storage

McpSource = Path | str | dict[str, object]


@dataclass
class Parts:
    """What one controller is made of; every session shares these."""

    settings: Settings
    backend: Backend
    storage: Storage
    audit: AuditLog
    metrics: Metrics
    loop: BackgroundLoop
    pool: ThreadPoolExecutor
    """Warm-ups: the next container of each session."""
    admission: Admission
    records: AuditQueue
    """Audit records written off the hot paths (egress proxies, approvals)."""
    approvals: ApprovalBroker
    """Tool calls waiting for a person's decision, of every session."""
    removals: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="sbx-rm")
    )
    """Removals of finished runs' containers (their run slots are freed after)."""
    boots: BootGate = field(default_factory=lambda: BootGate(0))
    """Boxes booting at once, owners taking turns (see `gate`)."""
    strays: Strays = field(default_factory=Strays)
    """Boxes whose removal failed, removed again by `Orchestrator.gc`."""
    image: str = ""
    profiles: dict[str, Profile] | None = None
    pii: tuple[MasterKeys, Detector, FieldRules] | None = None
    bridge: ToolBridge | None = None
    webhook: ApprovalWebhook | None = None
    lock_file: IO[bytes] | None = None

    def close(self) -> None:
        """Release everything, in the reverse order of building it."""
        self.pool.shutdown(wait=True)
        self.removals.shutdown(wait=True)
        self.approvals.close()
        if self.webhook is not None:
            self.webhook.close()
        if self.bridge is not None:
            self.bridge.close()
        self.loop.close()
        self.backend.close()
        self.records.close()
        self.admission.close()
        self.audit.close()
        if self.lock_file is not None:
            self.lock_file.close()


def assemble(
    settings: Settings,
    *,
    backend: Backend | None = None,
    mcp_config: McpSource | None = None,
    keys: KeyStore | None = None,
) -> Parts:
    """Build a controller's parts; the engine must answer.

    Raises:
        ControllerBusyError: another live controller uses the same data directory.
        BackendUnavailableError: no container engine answers.
        ImageBuildError: the sandbox image is missing and could not be built.
        InvalidInputError: a bad profiles file or MCP configuration.
    """
    backend = backend if backend is not None else make_backend(settings.backend)
    try:
        lock_file = lock_data_dir(settings.own_dir)
    except BaseException:
        backend.close()
        raise
    try:
        audit = AuditLog(
            settings.audit_log or settings.own_dir / "audit.log",
            AuditKeys.load_or_create(settings.audit_keys or settings.data_dir / "audit-keys.json"),
        )
    except BaseException:
        lock_file.close()
        backend.close()
        raise
    metrics = Metrics()
    audit.subscribe(metrics.on_audit)
    records = AuditQueue(audit, settings.controller_id)
    parts = Parts(
        settings=settings,
        backend=backend,
        storage=Storage(settings.own_dir, settings.workspace_backing, settings.data_dir / "skills"),
        audit=audit,
        metrics=metrics,
        loop=BackgroundLoop(),
        pool=ThreadPoolExecutor(max_workers=16, thread_name_prefix="sbx"),
        admission=Admission(
            settings.api,
            audit,
            settings.controller_id,
            keys if keys is not None else KeyStore(settings.data_dir / "keys.json"),
        ),
        lock_file=lock_file,
        records=records,
        approvals=ApprovalBroker(settings.approvals, records),
        boots=BootGate(settings.api.boots_limit()),
    )
    try:
        parts.backend.ping()
        parts.image = settings.image or ensure_image(parts.backend, settings.base_image)
        if not parts.backend.image_exists(parts.image):
            raise NotFoundError(f"sandbox image {parts.image!r} does not exist")
        parts.pii = pii_setup(settings.pii)
        if settings.approvals.webhook_url is not None:
            parts.webhook = ApprovalWebhook(parts.approvals, settings.approvals, records)
        profiles = load_profiles(settings.profiles)
        profiles["default"] = profiles["default"].model_copy(
            update={"limits": settings.limits, "runtime": settings.runtime}
        )
        parts.profiles = profiles
        source = mcp_config if mcp_config is not None else settings.mcp_config
        if source is not None:
            parts.bridge = _bridge(settings, source, audit, parts.loop, parts.approvals)
    except BaseException:
        parts.close()
        raise
    return parts


def _bridge(
    settings: Settings,
    source: McpSource,
    audit: AuditLog,
    loop: BackgroundLoop,
    approvals: ApprovalBroker,
) -> ToolBridge:
    secret = settings.secret_key
    store = SecretStore(
        settings.data_dir / "secrets.json",
        master_key(secret.get_secret_value() if secret else None, settings.data_dir),
    )
    return ToolBridge(
        load_config(source),
        settings.own_dir / "api",
        audit,
        settings.tool_limits,
        resolve=store.resolve,
        loop=loop,
        approvals=approvals,
    )


def pii_setup(cfg: PiiSettings) -> tuple[MasterKeys, Detector, FieldRules] | None:
    """The master keys, detector and field rules PII tokenization needs; None when it is off."""
    if not cfg.enabled:
        return None
    secret = cfg.secret.get_secret_value().encode() if cfg.secret else os.urandom(32)
    keys = {kid: s.get_secret_value().encode() for kid, s in cfg.previous_secrets.items()}
    keys[cfg.key_id] = secret
    recognizers = default_recognizers(
        cfg.phone_region, regions=cfg.phone_regions, private_ips=cfg.private_ips
    )
    extra = []
    if cfg.presidio_entities:
        from sandbox.pii.presidio import presidio_detector

        extra.append(presidio_detector(cfg.presidio_entities, cfg.presidio_model))
    fields = FieldRules(
        [FieldRule(r.path, r.entity, r.tools) for r in cfg.fields],
        keys=cfg.structured,
        entities=cfg.entities,
    )
    return (
        MasterKeys(keys, cfg.key_id),
        Detector(recognizers, entities=cfg.entities, extra=extra),
        fields,
    )


def lock_data_dir(data_dir: Path) -> IO[bytes]:
    """Hold an exclusive lock on the data dir for the controller's lifetime.

    Raises:
        ControllerBusyError: another live controller holds it.
    """
    data_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
    handle = open(data_dir / "controller.lock", "ab")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ControllerBusyError(f"another controller is using {data_dir}") from None
    os.set_inheritable(handle.fileno(), False)
    return handle
