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

from sandbox.exceptions import AuthenticationError, RateLimitedError, SandboxError, describe
from sandbox.http_api.limits import SECURITY_HEADERS, BodyProblem

logger = logging.getLogger(__name__)
JSONRPC_SERVER_ERROR = -32000
"""JSON-RPC's implementation-defined server error: a refusal before the MCP server saw the call."""


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def bearer_challenge(presented: bool) -> str:
    """The WWW-Authenticate header of a 401 (RFC 6750 §3): a key that was sent and refused is
    an invalid token; without a key, a bare challenge.

    Never a `resource_metadata` parameter, and no /.well-known/oauth-* documents: MCP clients
    (the Inspector, the SDKs) would take them for an OAuth server to sign in to, and start an
    interactive flow. Keys come from `sandbox keys create`, not from OAuth.
    """
    if not presented:
        return "Bearer"
    return 'Bearer error="invalid_token", error_description="the API key was not accepted"'


def front_door_refusal(exc: SandboxError, *, mcp: bool, presented: bool) -> JSONResponse:
    """A request the front door refused (no or a wrong key, over its rate, still starting).

    On /mcp the body is a JSON-RPC error, the endpoint's own language: MCP clients show its
    message (`unauthorized: ...`) where they would otherwise report a bare HTTP status. The
    stable code is in `error.data.code`.
    """
    status, code, message, headers = _answer(exc)
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = bearer_challenge(presented)
    if not mcp:
        return error_response(status, code, message, headers)
    rpc = {"code": JSONRPC_SERVER_ERROR, "message": f"{code}: {message}", "data": {"code": code}}
    return JSONResponse(
        {"jsonrpc": "2.0", "id": None, "error": rpc},
        status_code=status,
        headers={**SECURITY_HEADERS, **headers},
    )


def sandbox_error_response(exc: SandboxError) -> JSONResponse:
    return error_response(*_answer(exc))


def _answer(exc: SandboxError) -> tuple[int, str, str, dict[str, str]]:
    """Status, code, message and headers for `exc`: nothing host-side for `internal` or an
    unavailable audit trail (the log has it)."""
    status, code = describe(exc)
    if code == "audit_unavailable":
        logger.error("audit trail unavailable: %s", exc)
        return 503, code, "the audit trail is unavailable", {}
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, round(exc.retry_after or 1)))
    if code == "internal":
        logger.exception("unmapped sandbox error", exc_info=exc)
        return 500, "internal", "internal error", {}
    return status, code, str(exc)[:500], headers


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
