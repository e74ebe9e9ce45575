"""Route dependencies: the principal behind the API key (through core admission), and the
principal's own session (another owner's session is a 404, never a 403)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sandbox.core.admission import Principal
from sandbox.core.session import Session
from sandbox.exceptions import AuthenticationError
from sandbox.http_api.state import AppState, app_state

PRINCIPAL_STATE = "sbx_principal"


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
    """The principal the front door admitted for this request (it admits every /v1 route).

    Raises:
        AuthenticationError: no principal (a route outside the front door's paths).
    """
    principal = request.scope.get("state", {}).get(PRINCIPAL_STATE)
    if not isinstance(principal, Principal):
        raise AuthenticationError("a valid API key is required")
    return principal


Caller = Annotated[Principal, Depends(rest_principal)]
State = Annotated[AppState, Depends(app_state)]


def owned(state: AppState, principal: Principal, sid: str) -> Session:
    """Raises NotFoundError for a missing session or another owner's."""
    return state.orc().owned_session(principal.owner, sid)
