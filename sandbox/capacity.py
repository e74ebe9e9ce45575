"""The controller's worst-case memory, as a formula of its settings.

Every term is a bound the code enforces (tests/unit/http/test_memory.py measures it under
hostile load); the sum is what a deployment must budget beyond the interpreter itself. One
term is open: each session's PII vault grows with the distinct values its output holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.models import MiB
from sandbox.settings import Settings

KiB = 1024
_OUTBOX = 8 * MiB  # channel.py: replies queued for a box that stopped reading
_UPLOAD_CHUNK = 64 * KiB  # a streamed upload holds one chunk (plus the server's buffer)
_CODE = 1 * MiB + 64 * KiB  # a queued run's code and env (core/runargs.py: code and env caps)
_IDEM_ENTRY = 512  # an Idempotency-Key's digest, time and file name; its result is on disk
_AUDIT_RECORD = 2 * KiB  # a bounded audit record waiting to be written (audit.py caps fields)
_AUDIT_QUEUES = 3  # admission's, the bridge's and the egress proxies'
_DOWNLOADS = 4  # http_api/bodies.py: downloads read whole at once
_UPLOADS = 8  # ... and uploads streamed at once
_AUDIT_QUEUED = 10_000 + 1_000  # audit_queue.py: max_queued + max_kinds
_SESSION = 64 * KiB  # a session, its warm container's channel and runner


@dataclass(frozen=True)
class MemoryCeiling:
    """Bytes, term by term."""

    runs: int
    queued_runs: int
    request_bodies: int
    uploads: int
    downloads: int
    idempotency: int
    audit: int
    sessions: int

    @property
    def total(self) -> int:
        return (
            self.runs
            + self.queued_runs
            + self.request_bodies
            + self.uploads
            + self.downloads
            + self.idempotency
            + self.audit
            + self.sessions
        )


def memory_ceiling(settings: Settings) -> MemoryCeiling:
    """The most memory the controller's bounded parts can hold at once (PII vaults aside)."""
    api, limits, tools = settings.api, settings.limits, settings.tool_limits
    # A running run keeps both streams (bytes, then the decoded and tokenized text: x4), its
    # outbox, a control frame being read, and its calls in flight (arguments and results, the
    # result held raw, parsed and tokenized: x3).
    per_run = (
        4 * 2 * limits.output_bytes
        + _OUTBOX
        + tools.max_args_bytes
        + tools.max_in_flight * (tools.max_args_bytes + 3 * tools.max_result_bytes)
    )
    return MemoryCeiling(
        runs=api.runs_total * per_run,
        queued_runs=api.run_queue * _CODE,
        # JSON bodies are held raw and parsed (x3), all together within their budget.
        request_bodies=3 * min(api.json_budget_bytes, api.max_connections * api.max_json_bytes),
        uploads=_UPLOADS * 2 * _UPLOAD_CHUNK + api.max_connections * _UPLOAD_CHUNK,
        # A download is read whole, then sent (x2).
        downloads=_DOWNLOADS * 2 * limits.max_file_mb * MiB,
        idempotency=10_000 * _IDEM_ENTRY,
        audit=_AUDIT_QUEUES * _AUDIT_QUEUED * _AUDIT_RECORD,
        sessions=api.sessions_total * _SESSION,
    )
