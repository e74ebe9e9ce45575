"""HTTP API: a thin FastAPI layer over the core.

Every route authenticates a bearer API key through core admission, which names an owner; a
key sees only its owner's sessions and skills (anything else is a 404, never a 403, so ids
cannot be probed). Errors are JSON with a stable code taken from the exception classes.

    app.py          assembly: lifespan, middleware, routers, the /mcp mount
    deps.py         the principal behind the key; the principal's own session
    errors.py       exception → JSON error response
    limits.py       body size and arrival-time limits, security headers
    idempotency.py  Idempotency-Key: one execution per key
    schemas.py      request and response bodies
    state.py        the orchestrator and settings the routes share
    routes/         sessions, runs, files, skills, tools, health
"""

from sandbox.http_api.app import create_app, serve

__all__ = ["create_app", "serve"]
