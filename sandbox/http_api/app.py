"""The HTTP API's assembly: settings, the orchestrator's lifetime, middleware, routers, /mcp."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.concurrency import run_in_threadpool

from sandbox.core.orchestrator import Orchestrator
from sandbox.exceptions import BackendUnavailableError, SandboxError
from sandbox.http_api import docs, openapi
from sandbox.http_api.deps import PRINCIPAL_STATE, authenticate, bearer
from sandbox.http_api.errors import front_door_refusal, install_error_handlers
from sandbox.http_api.limits import SECURITY_HEADERS, BodyLimit
from sandbox.http_api.routes import approvals, files, health, runs, sessions, skills, tools
from sandbox.http_api.state import AppState
from sandbox.keys import KeyStore
from sandbox.settings import Settings

logger = logging.getLogger(__name__)
API_DESCRIPTION = """\
Ephemeral hardened sandboxes for code-executing AI agents: open a session, run code in a
fresh container per run, keep files in the session's /workspace.

Every /v1 route takes an API key (`Authorization: Bearer sbx_...`, from `sandbox keys create`).
Errors are `{"error": {"code": "...", "message": "..."}}`; branch on `code`, which is stable.
A run POSTed with an `Idempotency-Key` runs once however often it is retried. The MCP endpoint
for MCP clients is `/mcp` (streamable HTTP), with the same keys.
"""


def create_app(
    settings: Settings | None = None,
    *,
    orchestrator: Orchestrator | None = None,
    keys: KeyStore | None = None,
) -> FastAPI:
    """The HTTP API (and the MCP endpoint at /mcp) over one Orchestrator.

    Without an orchestrator, one is made from `settings` at startup (once the engine
    answers; until then /healthz and every route say 503) and closed at shutdown.
    """
    if settings is None:
        settings = orchestrator.settings if orchestrator else Settings()
    keystore = keys if keys is not None else KeyStore(settings.data_dir / "keys.json")
    state = AppState(settings, keystore, orchestrator)
    if orchestrator is not None:
        orchestrator.admission.keys = keystore

    from sandbox.mcp import build_mcp_server

    mcp_server = build_mcp_server(state.orc, settings=settings, idle_s=settings.api.session_idle_s)
    mcp_app = mcp_server.streamable_http_app(
        streamable_http_path="/mcp",
        host=settings.api.host,
        # MCP sessions open sandbox sessions: the same cap, and the same idle time.
        max_sessions=settings.api.sessions_total,
        session_idle_timeout=settings.api.session_idle_s,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = state.orchestrator is None
        # Runs hold a worker thread each, at most runs_total of them (admission's slots): the
        # pool is sized so that past them other requests (files, skills, sessions) still have
        # threads, whatever runs a tenant keeps going.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, settings.api.runs_total + 32)
        connecting = asyncio.create_task(_connect(state))
        expiry = asyncio.create_task(_expire_loop(state))
        try:
            async with mcp_app.router.lifespan_context(mcp_app):
                yield
        finally:
            for task in (connecting, expiry):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            mcp_server.sandbox_sessions.close_all()  # type: ignore[attr-defined]
            state.idempotency.close()
            if owned and state.orchestrator is not None:
                await run_in_threadpool(state.orchestrator.close)

    app = FastAPI(
        title="sandbox",
        version="0.1.0",
        lifespan=lifespan,
        description=API_DESCRIPTION,
        docs_url=None,  # ours (docs.py): assets served here, not from a CDN
        redoc_url=None,
        openapi_url="/openapi.json" if settings.api.docs else None,
        generate_unique_id_function=lambda route: route.name,  # operationId: the function
    )
    openapi.install(app)
    if settings.api.docs:
        docs.install(app)
    app.state.sbx = state
    app.add_middleware(
        BodyLimit,
        limit=settings.api.max_body_bytes,
        deadline_s=settings.api.body_timeout_s,
        json_limit=settings.api.max_json_bytes,
        json_budget=settings.api.json_budget_bytes,
    )

    app.middleware("http")(front_door)
    install_error_handlers(app)
    for module in (sessions, runs, files, skills, tools, approvals, health):
        app.include_router(module.router)
    # A client's DELETE of its MCP session also ends the sandbox session it had.
    app.mount("/", mcp_server.sandbox_sessions.watch_ends(mcp_app))  # type: ignore[attr-defined]
    return app


async def front_door(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    # Every /v1 route and /mcp pass admission here, before any body is read: a caller
    # without a valid key holds no body budget and no worker. The principal rides along in
    # the request state for the routes and the MCP tools, which never look at the key.
    surface = _surface(request.url.path)
    if surface is not None:
        try:
            principal = await authenticate(request, surface)
        except SandboxError as exc:
            presented = bearer(request) is not None
            return front_door_refusal(exc, mcp=surface == "mcp-http", presented=presented)
        request.scope.setdefault("state", {})[PRINCIPAL_STATE] = principal
        # The MCP SDK binds each MCP session to the user who opened it: another key cannot
        # use or end it.
        request.scope["user"] = AuthenticatedUser(
            AccessToken(token="", client_id=principal.key_id, scopes=[])
        )
    response = await call_next(request)
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)
    return response


def _surface(path: str) -> str | None:
    """Which surface a path belongs to; None for the unauthenticated ones (health, metrics)."""
    if path == "/mcp" or path.startswith("/mcp/"):
        return "mcp-http"
    if path.startswith("/v1/"):
        return "sse" if path.endswith("/runs/stream") else "rest"
    return None


async def _connect(state: AppState) -> None:
    """No engine at startup is not a crash: /healthz says 503 and routes 503 until it answers."""
    delay = 1.0
    while state.orchestrator is None:
        try:
            orc = await run_in_threadpool(Orchestrator, state.settings, keys=state.keys)
        except BackendUnavailableError as exc:
            state.startup_error = str(exc)[:300]
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)
        else:
            state.orchestrator = orc


async def _expire_loop(state: AppState, every_s: float = 5.0, gc_every: int = 12) -> None:
    """Close expired sessions every `every_s`; every `gc_every` rounds, remove stray boxes."""
    for tick in itertools.count(1):
        await asyncio.sleep(every_s)
        orc = state.orchestrator
        if orc is None:
            continue
        try:
            await run_in_threadpool(orc.expire_sessions)
            if tick % gc_every == 0:
                await run_in_threadpool(orc.gc)
        except Exception:
            logger.exception("expiring sessions and removing strays")


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the API with uvicorn until SIGINT/SIGTERM (then sessions are closed)."""
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        timeout_keep_alive=5,
        limit_concurrency=settings.api.max_connections,
        # h11, never httptools (even where it is installed): only h11 bounds what a client may
        # send before its headers end; httptools kept a 50 MB header line in memory.
        http="h11",
        h11_max_incomplete_event_size=64 * 1024,
        timeout_graceful_shutdown=30,
    )
