"""The approvals webhook: every approval event POSTed to a URL the deployment names.

    POST <webhook_url>
    Content-Type: application/json
    X-Sandbox-Event: approval.requested | approval.settled
    X-Sandbox-Timestamp: <unix seconds>
    X-Sandbox-Signature: sha256=<hex HMAC-SHA256(webhook_secret, "<timestamp>.<body>")>

    {"event": "approval.requested", "approval": {"id": ..., "owner": ..., "session": ...,
     "server": "mailer", "tool": "send_email", "arguments": {...tokens...}, "reason": ...,
     "status": "pending", "created_at": ..., "expires_at": ...}}

A receiver checks the signature and that the timestamp is recent, then either answers a
requested event at once with `{"decision": "approve"|"deny", "reason": "..."}` (an automatic
reviewer), or answers 2xx with anything else and lets a person decide later through
`POST /v1/approvals/{id}`. Posts are made by one thread of their own, one at a time, with a
timeout, never on the loop that serves tool calls; events past a bounded queue are dropped,
and failures are counted on the audit trail. There are no retries: the HTTP route stays the
way to decide.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import queue
import threading
import time

import httpx

from sandbox.audit_queue import AuditQueue
from sandbox.bridge.approvals.broker import ApprovalBroker
from sandbox.bridge.approvals.models import Approval, ApprovalSettings
from sandbox.exceptions import NotFoundError

logger = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024
_STOP = None


class ApprovalWebhook:
    """Sends the broker's approval events to `settings.webhook_url` until `close()`."""

    def __init__(
        self,
        broker: ApprovalBroker,
        settings: ApprovalSettings,
        records: AuditQueue | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if settings.webhook_url is None:
            raise ValueError("no webhook_url is set")
        self._broker, self._records, self._url = broker, records, settings.webhook_url
        secret = settings.webhook_secret
        self._secret = secret.get_secret_value().encode() if secret is not None else None
        self._queue: queue.Queue[tuple[str, Approval] | None] = queue.Queue(settings.webhook_queue)
        # Redirects are not followed: the deployment named one receiver, and no other.
        self._http = httpx.Client(
            timeout=settings.webhook_timeout_s, transport=transport, follow_redirects=False
        )
        self._thread = threading.Thread(target=self._loop, name="sbx-approval-hook", daemon=True)
        self._thread.start()
        self._unwatch = broker.watch(self)

    # -- ApprovalWatcher: called on the thread that changed the approval, so only queued ----

    def pending(self, approval: Approval) -> None:
        self._offer("approval.requested", approval)

    def settled(self, approval: Approval) -> None:
        self._offer("approval.settled", approval)

    def _offer(self, event: str, approval: Approval) -> None:
        try:
            self._queue.put_nowait((event, approval))
        except queue.Full:
            self._count(approval, "queue_full")

    # -- the sender thread --------------------------------------------------------------

    def _loop(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            event, approval = item
            try:
                self._post(event, approval)
            except Exception:  # the sender thread's top: it must outlive one bad event
                logger.exception("approval webhook: an event could not be sent")

    def _post(self, event: str, approval: Approval) -> None:
        body = json.dumps({"event": event, "approval": approval.model_dump()}).encode()
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Sandbox-Event": event,
            "X-Sandbox-Timestamp": stamp,
        }
        if self._secret is not None:
            mac = hmac.new(self._secret, stamp.encode() + b"." + body, hashlib.sha256)
            headers["X-Sandbox-Signature"] = "sha256=" + mac.hexdigest()
        try:
            with self._http.stream("POST", self._url, content=body, headers=headers) as r:
                answer = _read_capped(r) if r.is_success else None
                status = r.status_code
        except httpx.HTTPError as exc:
            self._count(approval, type(exc).__name__)
            return
        if answer is None:
            self._count(approval, f"http_{status}")
            return
        if event == "approval.requested":
            self._apply(approval, answer)

    def _apply(self, approval: Approval, answer: bytes) -> None:
        """A decision in the receiver's answer, if it holds one."""
        try:
            said = json.loads(answer) if answer.strip() else None
        except (ValueError, RecursionError):
            self._count(approval, "bad_answer")
            return
        if not isinstance(said, dict) or said.get("decision") not in ("approve", "deny"):
            return  # no decision: a person decides later
        reason = said.get("reason")
        with contextlib.suppress(NotFoundError):  # settled meanwhile: elsewhere, expired...
            self._broker.decide(
                approval.owner,
                approval.id,
                said["decision"] == "approve",
                reason if isinstance(reason, str) else "",
                by="webhook",
            )

    def _count(self, approval: Approval, reason: str) -> None:
        if self._records is not None:
            self._records.count(
                "approval_webhook_failed", {"owner": approval.owner, "reason": reason[:64]}
            )

    def close(self) -> None:
        self._unwatch()
        with contextlib.suppress(queue.Full):  # the thread is a daemon: it ends with us
            self._queue.put(_STOP, timeout=1)
        self._thread.join(timeout=5)
        self._http.close()


def _read_capped(response: httpx.Response) -> bytes:
    """At most MAX_ANSWER_BYTES of the answer (more is taken for no answer)."""
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > MAX_ANSWER_BYTES:
            return b""
    return data
