"""Request limits enforced before a route runs: body size (413) and body arrival time (408)."""

from __future__ import annotations

import asyncio
import json
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


class BodyLimit:
    """Refuses bodies over `limit` bytes (413) and bodies that trickle in too slowly (408),
    without reading more than the limit. The deadline covers the request body only: a
    response that streams for longer (a streamed run) is not cut by it."""

    def __init__(
        self, app: ASGIApp, limit: int, deadline_s: float, json_limit: int, json_budget: int
    ) -> None:
        self.app, self.upload_limit, self.deadline_s = app, limit, deadline_s
        self.json_limit = min(json_limit, limit)
        # Bytes of in-memory bodies all requests together may hold, and one key's share of
        # them: one more is refused (503) rather than letting many large bodies add up past the
        # controller's memory ceiling, or one key starve the others.
        self.json_budget, self._held = json_budget, 0
        self.key_budget = max(1, json_budget // 4)
        self._held_by: dict[str, int] = {}

    def _limit(self, scope: Scope) -> int:
        # Uploads stream to disk and may be large; every other body is parsed whole in memory,
        # so it gets the small limit (the controller's memory ceiling depends on it).
        path: str = scope.get("path", "")
        upload = scope.get("method") == "PUT" and (
            "/files/" in path or path.startswith("/v1/skills/")
        )
        return self.upload_limit if upload else self.json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = True
                if too_big:
                    await send_error(
                        send, 413, "body_too_large", f"body is larger than {limit} bytes"
                    )
                    return
        received = 0
        end = time.monotonic() + self.deadline_s
        body_done = False
        started = False
        budgeted = limit == self.json_limit
        held = 0
        key = _key_id(scope)

        async def limited_receive() -> Message:
            nonlocal received, body_done, held
            if body_done:
                # After the body only a disconnect can come; it has no deadline.
                return await receive()
            try:
                message = await asyncio.wait_for(
                    receive(), timeout=max(0.01, end - time.monotonic())
                )
            except TimeoutError:
                raise BodyProblem(408, "body_timeout", "request body arrived too slowly") from None
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                received += size
                if received > limit:
                    raise BodyProblem(413, "body_too_large", f"body is larger than {limit} bytes")
                if budgeted:
                    mine = self._held_by.get(key, 0)
                    if self._held + size > self.json_budget or mine + size > self.key_budget:
                        raise BodyProblem(503, "busy", "too many large requests at once")
                    self._held += size
                    self._held_by[key] = mine + size
                    held += size
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyProblem as p:
            if not started:
                await send_error(send, p.status, p.code, p.message, dict(p.headers or {}))
        finally:
            if held:
                self._held -= held
                left = self._held_by.pop(key, 0) - held
                if left > 0:
                    self._held_by[key] = left


def _key_id(scope: Scope) -> str:
    """Whose body this is: the admitted key (the front door runs first), else one shared
    bucket for requests that need no key."""
    principal = scope.get("state", {}).get("sbx_principal")
    return str(getattr(principal, "key_id", ""))


class BodyProblem(HTTPException):
    """A body refused while it is read. An HTTPException so that FastAPI, which turns other
    errors raised while reading a body into a generic 400, lets it through to the handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        headers = {"Retry-After": "1"} if status == 503 else None
        super().__init__(status, message, headers)
        self.status, self.code, self.message = status, code, message


async def send_error(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    """Answer with our JSON error body straight from ASGI."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    raw += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
