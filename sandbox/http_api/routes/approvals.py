"""Approvals: the caller's owner's tool calls waiting for a decision, and the decision.

The broker (sandbox/bridge/approvals.py) holds the rules; an approval of another owner is a
404 here, like one that was never there or is already settled.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from sandbox.bridge.approvals.models import Approval
from sandbox.http_api.deps import Caller, State
from sandbox.http_api.schemas import ApprovalDecision

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])
ApprovalId = Annotated[str, Path(max_length=64)]


@router.get("", response_model=list[Approval])
async def list_approvals(
    key: Caller, state: State, session: Annotated[str | None, Query(max_length=128)] = None
) -> list[Approval]:
    """The pending approvals of the key's owner (of one session, if given), oldest first."""
    return state.orc().approvals.pending(key.owner, session)


@router.get("/{approval_id}", response_model=Approval)
async def get_approval(approval_id: ApprovalId, key: Caller, state: State) -> Approval:
    """One pending approval of the key's owner."""
    return state.orc().approvals.get(key.owner, approval_id)


@router.post("/{approval_id}", response_model=Approval)
async def decide(
    approval_id: ApprovalId, body: ApprovalDecision, key: Caller, state: State
) -> Approval:
    """Approve or deny; the answer is the approval as settled."""
    return state.orc().approvals.decide(
        key.owner, approval_id, body.decision == "approve", body.reason, by=f"key:{key.key_id}"
    )
