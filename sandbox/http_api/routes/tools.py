"""The MCP tools the caller's sessions may call, searchable by keyword."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from sandbox.http_api.deps import Caller, State, owned

router = APIRouter(tags=["tools"])
Detail = Literal["name", "summary", "schema"]
Limit = Annotated[int, Query(gt=0, le=200)]


@router.get("/v1/tools")
async def search_tools(
    key: Caller,
    state: State,
    query: str = "",
    detail: Detail = "summary",
    limit: Limit = 20,
    profile: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    """Tools of `profile`, or of the profile the key's sessions get when none is named."""
    return state.orc().search_tools(
        query, detail, limit, principal=key, profile=profile, surface="rest"
    )


@router.get("/v1/sessions/{sid}/tools")
async def search_session_tools(
    sid: str,
    key: Caller,
    state: State,
    query: str = "",
    detail: Detail = "summary",
    limit: Limit = 20,
) -> list[dict[str, Any]]:
    """The tools this session's code may call (its profile's and its own allowlist)."""
    return owned(state, key, sid).search_tools(query, detail, limit)
