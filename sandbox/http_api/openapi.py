"""The OpenAPI document as the API really behaves, not as FastAPI guesses it.

FastAPI knows nothing of what the front door does before a route runs, so the generated
document is completed here: the bearer scheme on every /v1 operation (keys are checked in a
middleware, not a dependency); our error envelope `{"error": {"code", "message"}}` with the
codes each status can carry, instead of FastAPI's `HTTPValidationError` (which this API never
sends); and the `Idempotency-Key` header on the operations that honour it (routes mark them
with `openapi_extra=IDEMPOTENT`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from sandbox.exceptions import ALIASES, SandboxError

SCHEME = "bearerAuth"
IDEMPOTENT: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 64},
            "description": "Any 1-64 printable characters, new for each run. A retry with "
            "the same key and body (after a timeout or a dropped connection) gets the first "
            "attempt's result instead of running again; the same key with another body is "
            "422 `idempotency_conflict`, and a result no longer held is 410 "
            "`idempotency_result_gone`. Results are kept `api.idempotency_ttl_s` (600 s).",
        }
    ]
}
"""`openapi_extra` of a route that runs a request once per Idempotency-Key."""
_BYTES = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
BINARY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes, streamed to disk (at most `api.max_body_bytes`).",
        "content": _BYTES,
    }
}
"""`openapi_extra` of a route that reads its raw body as a file."""
BINARY_RESPONSE: dict[str, Any] = {
    "responses": {"200": {"description": "The file's bytes.", "content": _BYTES}}
}
"""`openapi_extra` of a route that answers with a file's bytes."""
EVENT_STREAM: dict[str, Any] = {
    "responses": {
        "200": {
            "description": "Server-Sent Events: `stdout` and `stderr` (data: a JSON string) as "
            "the run writes, then one `result` (data: a RunResult) or `error` (data: "
            '`{"code", "message"}`) at the end.',
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    }
}
"""`openapi_extra` of the streamed run."""

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable; what a program should branch on (the Python "
                    "client raises the matching sandbox.exceptions class).",
                    "examples": ["not_found"],
                },
                "message": {
                    "type": "string",
                    "description": "For a person; may change between versions.",
                },
            },
        }
    },
}
# Codes the HTTP layer sends without an exception class of its own (limits.py, errors.py).
_HTTP_CODES = {
    "malformed_json": (400, "the body is not valid JSON, or nests too deeply"),
    "invalid_request": (422, "a field of the request failed validation"),
    "busy": (503, "too many large request bodies at once; retry"),
}
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_NOT_ON_HTTP = {"internal", "too_many_approvals"}  # the latter stays inside the bridge


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the completed document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `sandbox keys create --owner NAME`, sent as "
            "`Authorization: Bearer sbx_...`. A missing key or one not accepted is 401 "
            "`unauthorized`; a key sees only its owner's sessions (another's are 404).",
        }
    }
    by_status = codes_by_status()
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            _drop_untyped_json(operation)
            if path.startswith("/v1/"):
                operation["security"] = [{SCHEME: []}]
                _error_responses(operation, path, by_status)
            else:
                operation.get("responses", {}).pop("422", None)
    return doc


def _drop_untyped_json(operation: dict[str, Any]) -> None:
    """FastAPI documents every response without a model as JSON of any shape; where a route
    says what it really sends (bytes, events), that guess goes."""
    for response in operation.get("responses", {}).values():
        content = response.get("content", {})
        if len(content) > 1 and content.get("application/json") == {"schema": {}}:
            del content["application/json"]


def _error_responses(
    operation: dict[str, Any], path: str, by_status: dict[int, list[tuple[str, str]]]
) -> None:
    """The error statuses an operation can answer, each with the codes it may carry."""
    statuses = {401, 429, 500, 502, 503}
    if "{" in path:
        statuses.add(404)
    if operation.get("parameters") or "requestBody" in operation:
        statuses |= {400, 422}
    if "requestBody" in operation:
        statuses |= {408, 413}
    names = {p.get("name") for p in operation.get("parameters", [])}
    if "Idempotency-Key" in names:
        statuses.add(410)
    responses = operation.setdefault("responses", {})
    for status in sorted(statuses):
        codes = by_status.get(status, [])
        listed = "; ".join(f"`{code}`: {what}" for code, what in codes)
        response: dict[str, Any] = {
            "description": f"Error. {listed}" if listed else "Error.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status == 401:
            response["headers"] = {
                "WWW-Authenticate": {
                    "description": '`Bearer error="invalid_token"` for a key not accepted, '
                    "`Bearer` when none was sent. No OAuth: there is nothing to sign in to.",
                    "schema": {"type": "string"},
                }
            }
        if status == 429:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer"},
                }
            }
        responses[str(status)] = response
    operation["responses"] = dict(sorted(responses.items()))


def codes_by_status() -> dict[int, list[tuple[str, str]]]:
    """Each HTTP status, with the error codes answered with it and what each means (from the
    exception classes' docstrings, so the document follows sandbox.exceptions)."""
    found: dict[str, tuple[int, str]] = {}
    pending = [SandboxError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "code" in vars(cls) and cls.code not in found and cls.code not in _NOT_ON_HTTP:
            found[cls.code] = (cls.http_status, _first_line(cls.__doc__))
    found["internal"] = (500, "an unexpected error (details only in the server's log)")
    for code, cls in ALIASES.items():
        found.setdefault(code, (cls.http_status, ""))
    found.update(_HTTP_CODES)
    by_status: dict[int, list[tuple[str, str]]] = {}
    for code, (status, what) in sorted(found.items()):
        by_status.setdefault(status, []).append((code, what))
    return by_status


def _first_line(doc: str | None) -> str:
    line = (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""
    return line.rstrip(".")[:1].lower() + line.rstrip(".")[1:]
