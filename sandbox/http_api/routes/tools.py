"""The configured MCP tools, searchable by keyword."""

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
) -> list[dict[str, Any]]:
    return state.orc().search_tools(query, detail, limit)
