"""Sessions: open, list, show, close."""

from __future__ import annotations

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from sandbox.core.session import Session
from sandbox.http_api.deps import Caller, State, owned
from sandbox.http_api.schemas import SessionCreate
from sandbox.models import SessionInfo

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


def info(s: Session) -> SessionInfo:
    return SessionInfo(
        id=s.id,
        owner=s.owner,
        profile=s.profile.name,
        tools=list(s.tools) if s.tools is not None else None,
        ttl_s=s.ttl_s,
        idle_s=s.idle_s,
        surface=s.surface,
    )


@router.post("", status_code=201, response_model=SessionInfo)
async def create_session(body: SessionCreate, key: Caller, state: State) -> SessionInfo:
    """Open a session: a /workspace that lasts between runs, under a policy profile the key
    may use (its first one, or 'default', when none is named)."""
    rules = state.settings.api
    s = await run_in_threadpool(
        lambda: state.orc().open_session(
            key,
            surface="rest",
            profile=body.profile,
            tools=body.tools,
            ttl_s=body.ttl_s or rules.session_ttl_s,
            idle_s=body.idle_s or rules.session_idle_s,
        )
    )
    return info(s)


@router.get("", response_model=list[SessionInfo])
@router.get("/", response_model=list[SessionInfo], include_in_schema=False)
async def list_sessions(key: Caller, state: State) -> list[SessionInfo]:
    """The open sessions this key opened, on any surface (REST, /mcp), oldest first."""
    mine = [s for s in state.orc().sessions(key.owner) if s.principal.key_id == key.key_id]
    return [info(s) for s in sorted(mine, key=lambda s: s.created)]


@router.get("/{sid}", response_model=SessionInfo)
async def get_session(sid: str, key: Caller, state: State) -> SessionInfo:
    """One of the key owner's sessions (another owner's is a 404, like a missing one)."""
    return info(owned(state, key, sid))


@router.delete("/{sid}", status_code=204)
async def delete_session(sid: str, key: Caller, state: State) -> Response:
    """Close a session: its containers and its /workspace go."""
    await run_in_threadpool(owned(state, key, sid).close)
    return Response(status_code=204)
