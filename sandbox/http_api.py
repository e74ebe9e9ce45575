"""HTTP API: a thin FastAPI layer over the Orchestrator.

Every route authenticates a bearer API key, which names an owner; a key sees only its
owner's sessions and skills (anything else is a 404, never a 403, so ids cannot be probed).
Blocking calls into the Orchestrator run in worker threads. Errors are JSON with a stable
code: {"error": {"code": "not_found", "message": "..."}}.
"""

# No `from __future__ import annotations` here: FastAPI reads route annotations at runtime,
# and the `Key` dependency alias is local to create_app.
import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.audit import AuditError
from sandbox.exceptions import (
    BackendError,
    BackendUnavailableError,
    FileTypeError,
    InvalidInputError,
    NotFoundError,
    PolicyViolationError,
    QuotaExceededError,
    SandboxError,
    SessionClosedError,
    UnsafePathError,
)
from sandbox.keys import ApiKey, KeyStore
from sandbox.metrics import Metrics
from sandbox.models import FileEntry, RunResult
from sandbox.orchestrator import Orchestrator, Session
from sandbox.ratelimit import TokenBucket
from sandbox.settings import Settings

logger = logging.getLogger(__name__)

_ERRORS: list[tuple[type[Exception], int, str]] = [
    (UnsafePathError, 400, "unsafe_path"),
    (PolicyViolationError, 422, "policy_violation"),
    (InvalidInputError, 400, "invalid_input"),
    (FileTypeError, 400, "not_a_regular_file"),
    (NotFoundError, 404, "not_found"),
    (QuotaExceededError, 413, "quota_exceeded"),
    (SessionClosedError, 404, "not_found"),
    (AuditError, 503, "audit_unavailable"),
    (BackendUnavailableError, 503, "backend_unavailable"),
    (BackendError, 502, "backend_error"),
]


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


# -- request and response bodies ------------------------------------------------------------


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_s: float | None = Field(None, gt=0, le=7 * 86400)
    idle_s: float | None = Field(None, gt=0, le=86400)
    tools: list[str] | None = Field(None, max_length=256)
    profile: str = Field("default", max_length=64)


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: list[str] | str = Field(max_length=1024)
    timeout: float | None = Field(None, gt=0)
    env: dict[str, str] | None = None


class SessionInfo(BaseModel):
    id: str
    owner: str
    profile: str
    tools: list[str] | None
    ttl_s: float | None
    idle_s: float | None


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=1024 * 1024)
    timeout: float | None = Field(None, gt=0)
    env: dict[str, str] | None = None


class PreviewResponse(BaseModel):
    path: str
    text: str


# -- limits -----------------------------------------------------------------------------------


class BodyLimit:
    """Refuses bodies over `limit` bytes (413) and bodies that trickle in too slowly (408),
    without reading more than the limit."""

    def __init__(self, app: ASGIApp, limit: int, deadline_s: float) -> None:
        self.app, self.limit, self.deadline_s = app, limit, deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await _send_error(
                        send, 413, "body_too_large", f"body is larger than {self.limit} bytes"
                    )
                    return
        received = 0
        end = time.monotonic() + self.deadline_s
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            try:
                message = await asyncio.wait_for(
                    receive(), timeout=max(0.01, end - time.monotonic())
                )
            except TimeoutError:
                raise _BodyProblem(408, "body_timeout", "request body arrived too slowly") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyProblem(
                        413, "body_too_large", f"body is larger than {self.limit} bytes"
                    )
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyProblem as p:
            if not started:
                await _send_error(send, p.status, p.code, p.message)


class _BodyProblem(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


class Admission:
    """Per-key rate limit, and per-key and global caps on concurrent runs with a bounded queue."""

    def __init__(self, rate: float, burst: int, per_key: int, total: int, queue: int) -> None:
        self._rate, self._burst, self._per_key_cap = rate, burst, per_key
        self._buckets: dict[str, TokenBucket] = {}
        self._per_key: dict[str, asyncio.Semaphore] = {}
        self._global = asyncio.Semaphore(total)
        self._queue_cap = queue
        self._waiting = 0

    def check_rate(self, key: ApiKey) -> None:
        bucket = self._buckets.setdefault(key.id, TokenBucket(self._rate, self._burst))
        if not bucket.take():
            retry = max(1, round(bucket.retry_after() + 0.5))
            raise ApiError(
                429, "rate_limited", "too many requests for this key", {"Retry-After": str(retry)}
            )

    @contextlib.asynccontextmanager
    async def run_slot(self, key: ApiKey) -> AsyncIterator[None]:
        mine = self._per_key.setdefault(key.id, asyncio.Semaphore(self._per_key_cap))
        if self._waiting >= self._queue_cap:
            raise ApiError(
                429, "queue_full", "too many runs waiting; try again later", {"Retry-After": "1"}
            )
        self._waiting += 1
        try:
            await mine.acquire()
            try:
                await self._global.acquire()
            except BaseException:
                mine.release()
                raise
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._global.release()
            mine.release()


# -- the app ---------------------------------------------------------------------------------


def create_app(
    settings: Settings | None = None,
    *,
    orchestrator: Orchestrator | None = None,
    keys: KeyStore | None = None,
) -> FastAPI:
    """The HTTP API (and the MCP endpoint at /mcp) over one Orchestrator.

    Without an orchestrator, one is made from `settings` at startup and closed at shutdown.
    """
    settings = (
        settings
        if settings is not None
        else (orchestrator.settings if orchestrator else Settings())
    )
    api = settings.api
    keystore = keys if keys is not None else KeyStore(settings.data_dir / "keys.json")
    metrics = Metrics()
    holder: dict[str, Any] = {"orc": orchestrator}

    from sandbox.mcp_server import build_mcp_server

    mcp_server = build_mcp_server(lambda: orc(), keystore=keystore, idle_s=api.session_idle_s)
    mcp_app = mcp_server.streamable_http_app(streamable_http_path="/mcp", host=api.host)

    def attach(o: Orchestrator) -> None:
        o.audit.subscribe(metrics.on_audit)
        holder["orc"] = o

    async def connect_when_the_engine_answers() -> None:
        # No engine at startup is not a crash: /healthz says 503 and runs get 503 until it answers.
        delay = 1.0
        while holder["orc"] is None:
            try:
                attach(await run_in_threadpool(Orchestrator, settings))
            except BackendUnavailableError as exc:
                holder["startup_error"] = str(exc)[:300]
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = holder["orc"] is None
        if not owned:
            attach(holder["orc"])
        holder["admission"] = Admission(
            api.rate_per_s, api.rate_burst, api.runs_per_key, api.runs_total, api.run_queue
        )
        connecting = asyncio.create_task(connect_when_the_engine_answers())
        expiry = asyncio.create_task(_expire_loop(lambda: holder["orc"], metrics))
        try:
            async with mcp_app.router.lifespan_context(mcp_app):
                yield
        finally:
            for task in (connecting, expiry):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if owned and holder["orc"] is not None:
                await run_in_threadpool(holder["orc"].close)

    def orc() -> Orchestrator:
        o = holder["orc"]
        if o is None:
            raise ApiError(503, "starting", "the controller is starting")
        return o  # type: ignore[no-any-return]

    app = FastAPI(
        title="sandbox",
        version="0.1.0",
        lifespan=lifespan,
        description="Ephemeral hardened sandboxes for code-executing AI agents.",
    )
    app.add_middleware(BodyLimit, limit=api.max_body_bytes, deadline_s=api.body_timeout_s)

    @app.middleware("http")
    async def headers_and_auth(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/mcp") and _key_of(request, keystore) is None:
            metrics.auth_failures.inc()
            response: Response = _error(
                401, "unauthorized", "a valid API key is required", {"WWW-Authenticate": "Bearer"}
            )
        else:
            response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, exc: ApiError) -> JSONResponse:
        if exc.code == "rate_limited":
            metrics.rate_limited.inc()
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(SandboxError)
    async def on_sandbox_error(_: Request, exc: SandboxError) -> JSONResponse:
        for cls, status, code in _ERRORS:
            if isinstance(exc, cls):
                return _error(status, code, str(exc)[:500])
        logger.exception("unmapped sandbox error", exc_info=exc)
        return _error(500, "internal", "internal error")

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return _error(400, "malformed_json", "request body is not valid JSON")
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}"[:300])

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "bad_request"
        )
        if "parsing the body" in detail:
            code, detail = "malformed_json", "request body is not valid JSON"
        return _error(
            exc.status_code, code, detail[:300], dict(exc.headers) if exc.headers else None
        )

    @app.exception_handler(RecursionError)
    async def on_recursion(_: Request, exc: RecursionError) -> JSONResponse:
        return _error(400, "malformed_json", "request body nests too deeply")

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        # No host paths, tracebacks or container ids leave the server (THREATS E5).
        logger.exception("unhandled error", exc_info=exc)
        return _error(500, "internal", "internal error")

    async def authenticate(request: Request) -> ApiKey:
        key = _key_of(request, keystore)
        if key is None:
            metrics.auth_failures.inc()
            await run_in_threadpool(
                orc().audit.record,
                "auth_failure",
                path=request.url.path[:200],
                client=request.client.host if request.client else None,
            )
            raise ApiError(
                401, "unauthorized", "a valid API key is required", {"WWW-Authenticate": "Bearer"}
            )
        try:
            holder["admission"].check_rate(key)
        except ApiError:
            await run_in_threadpool(
                orc().audit.record, "rate_limited", key_id=key.id, owner=key.owner
            )
            raise
        return key

    Key = Annotated[ApiKey, Depends(authenticate)]

    def owned_session(key: ApiKey, sid: str) -> Session:
        try:
            session = orc().get_session(sid)
        except NotFoundError:
            session = None
        if session is None or session.owner != key.owner:
            raise ApiError(404, "not_found", "no such session")
        return session

    def info(s: Session) -> SessionInfo:
        return SessionInfo(
            id=s.id,
            owner=s.owner,
            profile=s.profile.name,
            tools=list(s.tools) if s.tools is not None else None,
            ttl_s=s.ttl_s,
            idle_s=s.idle_s,
        )

    @app.post("/v1/sessions", status_code=201, response_model=SessionInfo)
    async def create_session(body: SessionCreate, key: Key) -> SessionInfo:
        mine = [s for s in orc().sessions() if s.owner == key.owner]
        if len(mine) >= api.sessions_per_owner:
            raise ApiError(
                429,
                "too_many_sessions",
                f"at most {api.sessions_per_owner} open sessions per owner",
            )
        s = await run_in_threadpool(
            orc().session,
            key.owner,
            None,
            None,
            body.tools,
            body.ttl_s or api.session_ttl_s,
            body.idle_s or api.session_idle_s,
            body.profile,
            tuple(key.profiles) if key.profiles is not None else None,
        )
        metrics.sessions.set(len(orc().sessions()))
        return info(s)

    @app.get("/v1/sessions/{sid}", response_model=SessionInfo)
    async def get_session(sid: str, key: Key) -> SessionInfo:
        return info(owned_session(key, sid))

    @app.delete("/v1/sessions/{sid}", status_code=204)
    async def delete_session(sid: str, key: Key) -> Response:
        await run_in_threadpool(owned_session(key, sid).close)
        metrics.sessions.set(len(orc().sessions()))
        return Response(status_code=204)

    idempotent: dict[tuple[str, str, str], tuple[str, float, asyncio.Future[RunResult]]] = {}

    async def admitted(
        key: ApiKey,
        sid: str,
        request: Request,
        body: BaseModel,
        fn: Callable[..., RunResult],
        *args: Any,
    ) -> RunResult:
        """A run within the key's and the global caps, off the event loop, counted, and at most
        once per Idempotency-Key (a retry gets the first attempt's result)."""
        idem = request.headers.get("idempotency-key")
        if idem is None:
            return await execute(key, fn, *args)
        if not 1 <= len(idem) <= 64:
            raise ApiError(400, "invalid_input", "Idempotency-Key must be 1-64 characters")
        digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        now = time.monotonic()
        for k in [k for k, (_, at, _) in idempotent.items() if now - at > 600]:
            del idempotent[k]
        entry = idempotent.get((key.owner, sid, idem))
        if entry is not None:
            if entry[0] != digest:
                raise ApiError(
                    422,
                    "idempotency_conflict",
                    "this Idempotency-Key was used with another request",
                )
            return await asyncio.shield(entry[2])
        if len(idempotent) >= 10_000:
            raise ApiError(
                429, "rate_limited", "too many idempotent requests in flight", {"Retry-After": "1"}
            )
        future: asyncio.Future[RunResult] = asyncio.ensure_future(execute(key, fn, *args))
        idempotent[(key.owner, sid, idem)] = (digest, now, future)
        try:
            return await asyncio.shield(future)
        except BaseException:
            if future.done() and future.exception() is not None:
                idempotent.pop((key.owner, sid, idem), None)  # a failed attempt may be retried
            raise

    async def execute(key: ApiKey, fn: Callable[..., RunResult], *args: Any) -> RunResult:
        async with holder["admission"].run_slot(key):
            result = await run_in_threadpool(fn, *args)
        metrics.observe_run(result)
        return result

    @app.post("/v1/sessions/{sid}/runs", response_model=RunResult)
    async def run(sid: str, body: RunRequest, request: Request, key: Key) -> RunResult:
        s = owned_session(key, sid)
        return await admitted(key, sid, request, body, s.run, body.code, body.timeout, body.env)

    @app.post("/v1/sessions/{sid}/commands", response_model=RunResult)
    async def run_command(sid: str, body: CommandRequest, request: Request, key: Key) -> RunResult:
        s = owned_session(key, sid)
        return await admitted(
            key, sid, request, body, s.run_command, body.command, body.timeout, body.env
        )

    @app.post("/v1/sessions/{sid}/runs/stream")
    async def run_stream(sid: str, body: RunRequest, key: Key) -> StreamingResponse:
        s = owned_session(key, sid)
        admission = holder["admission"]
        slot = admission.run_slot(key)
        await slot.__aenter__()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

        def on_output(stream: str, text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (stream, text))

        async def events() -> AsyncIterator[str]:
            try:
                task = asyncio.ensure_future(
                    run_in_threadpool(s.run, body.code, body.timeout, body.env, on_output)
                )
                while not (task.done() and queue.empty()):
                    with contextlib.suppress(TimeoutError):
                        stream, text = await asyncio.wait_for(queue.get(), timeout=0.25)
                        yield f"event: {stream}\ndata: {json.dumps(text)}\n\n"
                try:
                    result = task.result()
                except SandboxError as exc:
                    yield f"event: error\ndata: {json.dumps({'message': str(exc)[:500]})}\n\n"
                    return
                metrics.observe_run(result)
                yield f"event: result\ndata: {result.model_dump_json()}\n\n"
            finally:
                await slot.__aexit__(None, None, None)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"}
        )

    @app.get("/v1/sessions/{sid}/files", response_model=list[FileEntry])
    async def list_files(sid: str, key: Key, path: str = "") -> list[FileEntry]:
        return await run_in_threadpool(owned_session(key, sid).list_files, path)

    @app.get("/v1/sessions/{sid}/files/{path:path}")
    async def download(sid: str, path: str, key: Key) -> Response:
        data = await run_in_threadpool(owned_session(key, sid).download, path)
        return Response(data, media_type="application/octet-stream")

    @app.put("/v1/sessions/{sid}/files/{path:path}", status_code=204)
    async def upload(sid: str, path: str, request: Request, key: Key) -> Response:
        s = owned_session(key, sid)
        data = await request.body()
        await run_in_threadpool(s.upload, path, data)
        return Response(status_code=204)

    @app.delete("/v1/sessions/{sid}/files/{path:path}", status_code=204)
    async def delete_file(sid: str, path: str, key: Key) -> Response:
        await run_in_threadpool(owned_session(key, sid).delete_file, path)
        return Response(status_code=204)

    @app.get("/v1/sessions/{sid}/preview/{path:path}", response_model=PreviewResponse)
    async def preview(
        sid: str,
        path: str,
        key: Key,
        max_bytes: Annotated[int, Query(gt=0, le=1024 * 1024)] = 65536,
    ) -> PreviewResponse:
        text = await run_in_threadpool(owned_session(key, sid).read_text, path, max_bytes)
        return PreviewResponse(path=path, text=text)

    @app.get("/v1/skills", response_model=list[FileEntry])
    async def list_skills(key: Key) -> list[FileEntry]:
        return await run_in_threadpool(orc().skills(key.owner).list)

    @app.get("/v1/skills/{path:path}")
    async def read_skill(path: str, key: Key) -> Response:
        data = await run_in_threadpool(orc().skills(key.owner).read, path)
        return Response(data, media_type="application/octet-stream")

    @app.put("/v1/skills/{path:path}", status_code=204)
    async def save_skill(path: str, request: Request, key: Key) -> Response:
        data = await request.body()
        await run_in_threadpool(orc().skills(key.owner).save, path, data)
        return Response(status_code=204)

    @app.delete("/v1/skills/{path:path}", status_code=204)
    async def delete_skill(path: str, key: Key) -> Response:
        await run_in_threadpool(orc().skills(key.owner).delete, path)
        return Response(status_code=204)

    @app.get("/v1/tools")
    async def search_tools(
        key: Key,
        query: str = "",
        detail: Literal["name", "summary", "schema"] = "summary",
        limit: Annotated[int, Query(gt=0, le=200)] = 20,
    ) -> list[dict[str, Any]]:
        return orc().search_tools(query, detail, limit)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        o = holder["orc"]
        if o is None:
            starting = {"status": "starting", "engine": holder.get("startup_error", "connecting")}
            return JSONResponse(starting, status_code=503)
        try:
            await run_in_threadpool(o.backend.ping)
        except SandboxError as exc:
            return JSONResponse({"status": "unhealthy", "engine": str(exc)[:200]}, status_code=503)
        body: dict[str, Any] = {"status": "ok", "engine": "ok", "sessions": len(o.sessions())}
        if o.bridge is not None:
            body["mcp_servers"] = o.bridge.upstreams.status()
        return JSONResponse(body)

    @app.get("/metrics")
    async def prometheus() -> Response:
        o = holder["orc"]
        if o is not None:
            sessions = o.sessions()
            metrics.sessions.set(len(sessions))
            metrics.pii_tokens.set(sum(s.tokenizer.issued for s in sessions if s.tokenizer))
            metrics.warm_ready.set(sum(s.warm_ready() for s in sessions))
        return Response(metrics.render(), media_type=metrics.content_type)

    app.mount("/", mcp_app)
    return app


def _key_of(request: Request, keys: KeyStore) -> ApiKey | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        return None
    return keys.verify(value.strip())


async def _expire_loop(
    get_orc: Callable[[], Orchestrator | None], metrics: Metrics, every_s: float = 5.0
) -> None:
    while True:
        await asyncio.sleep(every_s)
        orc = get_orc()
        if orc is None:
            continue
        try:
            expired = await run_in_threadpool(orc.expire_sessions)
        except Exception:
            logger.exception("expiring sessions")
            continue
        if expired:
            metrics.sessions.set(len(orc.sessions()))


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the API with uvicorn until SIGINT/SIGTERM (then sessions are closed)."""
    import uvicorn

    app = create_app(settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_keep_alive=5,
        limit_concurrency=settings.api.max_connections,
        h11_max_incomplete_event_size=64 * 1024,
        timeout_graceful_shutdown=30,
    )


__all__ = ["create_app", "serve"]
