"""The key owner's skills (/skills in their sandboxes): list, read, save, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from sandbox.http_api.bodies import with_body_chunks
from sandbox.http_api.deps import Caller, State
from sandbox.http_api.openapi import BINARY_BODY, BINARY_RESPONSE
from sandbox.models import FileEntry

router = APIRouter(prefix="/v1/skills", tags=["skills"])


@router.get("", response_model=list[FileEntry])
async def list_skills(key: Caller, state: State) -> list[FileEntry]:
    """The owner's skills: files every sandbox of theirs sees read-only in /skills."""
    return await run_in_threadpool(state.orc().skills(key.owner).list)


@router.get("/{path:path}", openapi_extra=BINARY_RESPONSE)
async def read_skill(path: str, key: Caller, state: State) -> Response:
    """A skill file's bytes."""
    data = await run_in_threadpool(state.orc().skills(key.owner).read, path)
    return Response(data, media_type="application/octet-stream")


@router.put("/{path:path}", status_code=204, openapi_extra=BINARY_BODY)
async def save_skill(path: str, request: Request, key: Caller, state: State) -> Response:
    """Write the body to a skill file, within the owner's skills quota; later sandboxes see it."""
    store = state.orc().skills(key.owner)
    await with_body_chunks(request, lambda chunks: store.save_chunks(path, chunks))
    return Response(status_code=204)


@router.delete("/{path:path}", status_code=204)
async def delete_skill(path: str, key: Caller, state: State) -> Response:
    """Delete a skill file."""
    await run_in_threadpool(state.orc().skills(key.owner).delete, path)
    return Response(status_code=204)
