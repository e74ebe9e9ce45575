"""Unauthenticated: /healthz for orchestrators and load balancers, /metrics for Prometheus."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from sandbox.exceptions import SandboxError
from sandbox.http_api.deps import State

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(state: State) -> JSONResponse:
    """200 when the engine answers; 503 while it does not (or the controller is starting)."""
    o = state.orchestrator
    if o is None:
        starting = {"status": "starting", "engine": state.startup_error}
        return JSONResponse(starting, status_code=503)
    try:
        await run_in_threadpool(o.backend.ping)
    except SandboxError as exc:
        return JSONResponse({"status": "unhealthy", "engine": str(exc)[:200]}, status_code=503)
    body: dict[str, Any] = {"status": "ok", "engine": "ok", "sessions": len(o.sessions())}
    if o.bridge is not None:
        body["mcp_servers"] = o.bridge.upstreams.status()
    return JSONResponse(body)


@router.get("/metrics")
async def prometheus(state: State) -> Response:
    """Prometheus metrics (text exposition format)."""
    o = state.orchestrator
    if o is None:
        return Response(b"", media_type="text/plain")
    metrics = o.metrics
    sessions = o.sessions()
    metrics.sessions.set(len(sessions))
    metrics.pii_tokens.set(sum(s.tokenizer.issued for s in sessions if s.tokenizer))
    metrics.warm_ready.set(sum(s.warm_ready() for s in sessions))
    return Response(metrics.render(), media_type=metrics.content_type)
