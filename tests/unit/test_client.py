"""The HTTP client against a fake API (httpx.MockTransport): errors, retries, streams, secrets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from sandbox.client import AsyncClient, Client, OutputEvent
from sandbox.exceptions import (
    ApiError,
    AuthenticationError,
    BackendUnavailableError,
    InvalidInputError,
    NotFoundError,
    PolicyViolationError,
    QueueFullError,
    RateLimitedError,
    SandboxError,
    UnsafePathError,
)
from sandbox.models import RunResult

KEY = "sbx_test_0123456789abcdef"
RESULT = RunResult(exec_id="e1", exit_code=0, stdout="hi\n", stderr="", duration_s=0.1)
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, retries: int = 0) -> Client:
    return Client("http://api.test", KEY, retries=retries, transport=httpx.MockTransport(handler))


def error(status: int, code: str, message: str = "no", **headers: str) -> Handler:
    body = {"error": {"code": code, "message": message}}
    return lambda _: httpx.Response(status, json=body, headers=headers)


def raised(handler: Handler) -> SandboxError:
    with client(handler) as c, pytest.raises(SandboxError) as info:
        c.list_skills()
    return info.value


def sse(*events: tuple[str, object]) -> bytes:
    return "".join(f"event: {kind}\ndata: {json.dumps(data)}\n\n" for kind, data in events).encode()


def test_401_raises_authentication_error() -> None:
    exc = raised(error(401, "unauthorized", "a valid API key is required"))
    assert isinstance(exc, AuthenticationError)
    assert (exc.code, exc.status) == ("unauthorized", 401)
    assert "a valid API key is required" in str(exc)


def test_429_raises_rate_limited_error_with_retry_after() -> None:
    exc = raised(error(429, "rate_limited", **{"Retry-After": "7"}))
    assert isinstance(exc, RateLimitedError) and exc.retry_after == 7.0


def test_a_full_queue_is_a_rate_limit_too() -> None:
    exc = raised(error(429, "queue_full", **{"Retry-After": "1"}))
    assert isinstance(exc, QueueFullError) and exc.retry_after == 1.0


def test_429_without_retry_after_leaves_it_unknown() -> None:
    exc = raised(error(429, "too_many_sessions"))
    assert isinstance(exc, RateLimitedError) and exc.retry_after is None


def test_404_raises_not_found_error() -> None:
    exc = raised(error(404, "not_found", "no such session"))
    assert isinstance(exc, NotFoundError) and exc.status == 404


def test_codes_map_to_the_embedded_classes() -> None:
    assert isinstance(raised(error(400, "unsafe_path")), UnsafePathError)
    assert isinstance(raised(error(422, "policy_violation")), PolicyViolationError)


def test_an_alias_keeps_the_code_the_server_sent() -> None:
    exc = raised(error(400, "malformed_json"))
    assert isinstance(exc, InvalidInputError) and exc.code == "malformed_json"


def test_an_unknown_code_raises_api_error_with_that_code() -> None:
    exc = raised(error(418, "from_a_newer_server"))
    assert type(exc) is ApiError and (exc.code, exc.status) == ("from_a_newer_server", 418)


def test_a_non_json_500_raises_api_error() -> None:
    exc = raised(lambda _: httpx.Response(500, text="<html>Bad Gateway</html>"))
    assert type(exc) is ApiError and (exc.code, exc.status) == ("http_error", 500)


def test_an_internal_error_raises_api_error() -> None:
    exc = raised(error(500, "internal", "internal error"))
    assert type(exc) is ApiError and exc.code == "internal"


def test_an_unreachable_server_raises_backend_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with client(refuse) as c, pytest.raises(BackendUnavailableError):
        c.list_skills()


def test_an_idempotent_request_is_retried_after_a_503() -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json=[])])
    with client(lambda _: next(answers), retries=1) as c:
        assert c.list_skills() == []


def test_the_api_key_is_never_in_the_repr() -> None:
    with client(error(404, "not_found")) as c:
        assert KEY not in repr(c) and "api.test" in repr(c)
    async_client = AsyncClient("http://api.test", KEY)
    assert KEY not in repr(async_client)
    asyncio.run(async_client.aclose())


def test_the_api_key_is_sent_as_a_bearer_token() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200, json=[])

    with client(handler) as c:
        c.list_skills()
    assert seen == [f"Bearer {KEY}"]


# -- streams --------------------------------------------------------------------------------


def streaming(body: bytes, status: int = 200) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/sessions":
            return httpx.Response(201, json={"id": "s1", "owner": "alice"})
        return httpx.Response(status, content=body, headers={"content-type": "text/event-stream"})

    return handler


def test_a_stream_yields_output_then_the_result() -> None:
    body = sse(("stdout", "hi\n"), ("stderr", "warn\n"), ("result", RESULT.model_dump()))
    with client(streaming(body)) as c:
        events = list(c.session().stream("print('hi')"))
    assert events == [
        OutputEvent(stream="stdout", text="hi\n"),
        OutputEvent(stream="stderr", text="warn\n"),
        RESULT,
    ]


def test_a_stream_skips_events_it_does_not_know() -> None:
    body = b": keep-alive\n\n" + sse(("progress", 0.5), ("result", RESULT.model_dump()))
    with client(streaming(body)) as c:
        assert list(c.session().stream("1")) == [RESULT]


def test_an_error_event_raises_the_class_of_its_code() -> None:
    body = sse(("stdout", "a\n"), ("error", {"code": "policy_violation", "message": "refused"}))
    with client(streaming(body)) as c, pytest.raises(PolicyViolationError, match="refused"):
        list(c.session().stream("1"))


def test_an_error_event_without_a_code_raises_api_error() -> None:
    body = sse(("error", {"message": "run failed"}))
    with client(streaming(body)) as c, pytest.raises(ApiError, match="run failed"):
        list(c.session().stream("1"))


def test_a_stream_that_ends_before_the_result_raises() -> None:
    with client(streaming(sse(("stdout", "a\n")))) as c, pytest.raises(ApiError, match="ended"):
        list(c.session().stream("1"))


def test_a_connection_lost_mid_stream_raises_backend_unavailable() -> None:
    def body() -> Iterator[bytes]:
        yield sse(("stdout", "a\n"))
        raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/sessions":
            return httpx.Response(201, json={"id": "s1", "owner": "alice"})
        return httpx.Response(200, content=body())

    seen: list[OutputEvent | RunResult] = []

    def consume(events: Iterator[OutputEvent | RunResult]) -> None:
        for event in events:
            seen.append(event)

    with client(handler) as c, pytest.raises(BackendUnavailableError):
        consume(c.session().stream("1"))
    assert seen == [OutputEvent(stream="stdout", text="a\n")]


def test_a_refused_stream_raises_the_class_of_its_code() -> None:
    body = json.dumps({"error": {"code": "not_found", "message": "no such session"}}).encode()
    with client(streaming(body, status=404)) as c, pytest.raises(NotFoundError):
        list(c.session().stream("1"))


def test_the_async_stream_parses_like_the_sync_one() -> None:
    body = sse(("stdout", "hi\n"), ("result", RESULT.model_dump()))

    async def main() -> list[OutputEvent | RunResult]:
        async with AsyncClient(
            "http://api.test", KEY, transport=httpx.MockTransport(streaming(body))
        ) as c:
            s = await c.session()
            return [e async for e in s.stream("print('hi')")]

    assert asyncio.run(main()) == [OutputEvent(stream="stdout", text="hi\n"), RESULT]
