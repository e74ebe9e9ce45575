"""The MCP tools the caller's sessions may call, searchable by keyword."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from sandbox.http_api.deps import Caller, State

router = APIRouter(prefix="/v1/tools", tags=["tools"])


@router.get("")
async def search_tools(
    key: Caller,
    state: State,
    query: str = "",
    detail: Literal["name", "summary", "schema"] = "summary",
    limit: Annotated[int, Query(gt=0, le=200)] = 20,
    profile: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    """Tools of `profile`, or of the profile the key's sessions get when none is named."""
    return state.orc().search_tools(
        query, detail, limit, principal=key, profile=profile, surface="rest"
    )
