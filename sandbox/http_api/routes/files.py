"""A session's /workspace: list, download, upload, delete, and a PII-tokenized text preview."""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from sandbox.http_api.bodies import downloads, with_body_chunks
from sandbox.http_api.deps import Caller, State, owned
from sandbox.http_api.openapi import BINARY_BODY, BINARY_RESPONSE
from sandbox.http_api.schemas import PreviewResponse
from sandbox.models import FileEntry

router = APIRouter(prefix="/v1/sessions/{sid}", tags=["files"])


@router.get("/files", response_model=list[FileEntry])
async def list_files(sid: str, key: Caller, state: State, path: str = "") -> list[FileEntry]:
    """The files under /workspace (or under `path` in it), recursively."""
    return await run_in_threadpool(owned(state, key, sid).list_files, path)


@router.get("/files/{path:path}", openapi_extra=BINARY_RESPONSE)
async def download(sid: str, path: str, key: Caller, state: State) -> Response:
    """A workspace file's bytes, as the box wrote them (a link or FIFO is refused)."""
    s = owned(state, key, sid)
    data = await anyio.to_thread.run_sync(s.download, path, limiter=downloads())
    return Response(data, media_type="application/octet-stream")


@router.put("/files/{path:path}", status_code=204, openapi_extra=BINARY_BODY)
async def upload(sid: str, path: str, request: Request, key: Caller, state: State) -> Response:
    """Write the body to a workspace file (relative path; folders are created), within the
    session's quota."""
    s = owned(state, key, sid)
    await with_body_chunks(request, lambda chunks: s.upload_chunks(path, chunks))
    return Response(status_code=204)


@router.delete("/files/{path:path}", status_code=204)
async def delete_file(sid: str, path: str, key: Caller, state: State) -> Response:
    """Delete a workspace file."""
    await run_in_threadpool(owned(state, key, sid).delete_file, path)
    return Response(status_code=204)


@router.get("/preview/{path:path}", response_model=PreviewResponse)
async def preview(
    sid: str,
    path: str,
    key: Caller,
    state: State,
    max_bytes: Annotated[int, Query(gt=0, le=1024 * 1024)] = 65536,
) -> PreviewResponse:
    """A text file's first `max_bytes`, with personal data replaced by tokens ([EMAIL_1])."""
    text = await run_in_threadpool(owned(state, key, sid).read_text, path, max_bytes)
    return PreviewResponse(path=path, text=text)
