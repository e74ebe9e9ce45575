"""Errors as JSON with a stable code: {"error": {"code": "not_found", "message": "..."}}.

Statuses and codes come from the exception classes themselves (`sandbox.exceptions`), so the
API, the MCP server and the client cannot drift apart. No host paths, tracebacks or container
ids leave the server (THREATS E5).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox.exceptions import RateLimitedError, SandboxError, describe
from sandbox.http_api.limits import SECURITY_HEADERS, BodyProblem

logger = logging.getLogger(__name__)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def sandbox_error_response(exc: SandboxError) -> JSONResponse:
    status, code = describe(exc)
    if code == "audit_unavailable":
        # The host-side reason (a path, an errno) stays in the log.
        logger.error("audit trail unavailable: %s", exc)
        return error_response(503, code, "the audit trail is unavailable")
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after or 1)))
    if code == "internal":
        logger.exception("unmapped sandbox error", exc_info=exc)
        return error_response(500, "internal", "internal error")
    return error_response(status, code, str(exc)[:500], headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SandboxError)
    async def on_sandbox_error(_: Request, exc: SandboxError) -> JSONResponse:
        return sandbox_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return error_response(400, "malformed_json", "request body is not valid JSON")
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(
            422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}"[:300]
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, BodyProblem):
            return error_response(exc.status, exc.code, exc.message, dict(exc.headers or {}))
        detail = str(exc.detail)
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "bad_request"
        )
        if "parsing the body" in detail:
            code, detail = "malformed_json", "request body is not valid JSON"
        return error_response(
            exc.status_code, code, detail[:300], dict(exc.headers) if exc.headers else None
        )

    @app.exception_handler(RecursionError)
    async def on_recursion(_: Request, exc: RecursionError) -> JSONResponse:
        return error_response(400, "malformed_json", "request body nests too deeply")

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal", "internal error")
