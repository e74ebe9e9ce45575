"""Route dependencies: the principal behind the API key (through core admission), and the
principal's own session (another owner's session is a 404, never a 403)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sandbox.core.admission import Principal
from sandbox.core.session import Session
from sandbox.http_api.state import AppState, app_state


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


async def authenticate(request: Request, surface: str = "rest") -> Principal:
    """Raises AuthenticationError or RateLimitedError (both audited by admission)."""
    # Cheap and non-blocking (a digest compare; refusals are recorded by another thread), so
    # it runs on the event loop: a flood of bad keys takes no worker threads.
    return (
        app_state(request)
        .orc()
        .admission.authenticate(
            bearer(request),
            surface=surface,
            client=request.client.host if request.client else None,
            path=request.url.path,
        )
    )


async def rest_principal(request: Request) -> Principal:
    surface = "sse" if request.url.path.endswith("/stream") else "rest"
    return await authenticate(request, surface)


Caller = Annotated[Principal, Depends(rest_principal)]
State = Annotated[AppState, Depends(app_state)]


def owned(state: AppState, principal: Principal, sid: str) -> Session:
    """Raises NotFoundError for a missing session or another owner's."""
    return state.orc().owned_session(principal.owner, sid)
