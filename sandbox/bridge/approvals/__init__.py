"""Approval of tool calls from code: the broker calls wait in (broker.py), what an approval
is and the settings (models.py), and the deployment's webhook (webhook.py)."""

from sandbox.bridge.approvals.broker import ApprovalBroker, ApprovalWatcher, CallContext, approved
from sandbox.bridge.approvals.models import (
    Approval,
    ApprovalLimitError,
    ApprovalSettings,
    summarize,
)

__all__ = [
    "Approval",
    "ApprovalBroker",
    "ApprovalLimitError",
    "ApprovalSettings",
    "ApprovalWatcher",
    "CallContext",
    "approved",
    "summarize",
]
