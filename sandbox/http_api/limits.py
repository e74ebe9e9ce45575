"""Request limits enforced before a route runs: body size (413) and body arrival time (408)."""

from __future__ import annotations

import asyncio
import json
import time

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
                    await send_error(
                        send, 413, "body_too_large", f"body is larger than {self.limit} bytes"
                    )
                    return
        received = 0
        end = time.monotonic() + self.deadline_s
        body_done = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                # After the body only a disconnect can come; it has no deadline.
                return await receive()
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
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyProblem as p:
            if not started:
                await send_error(send, p.status, p.code, p.message)


class _BodyProblem(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
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
