"""The client's URL and key: read from the environment when not given, and refused with a
reason (never silently changed, never echoed) when they cannot work."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sandbox.client import AsyncClient, Client
from sandbox.exceptions import InvalidInputError

KEY = "sbx_0123456789ab_" + "s" * 43


def recorder(seen: list[httpx.Request]) -> httpx.MockTransport:
    """A fake server for either client that answers every request with [] and keeps it."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    return httpx.MockTransport(handle)


def refused(base_url: str | None, api_key: str | None) -> str:
    """The message both clients refuse these with (the same one)."""
    with pytest.raises(InvalidInputError) as sync:
        Client(base_url, api_key)

    async def make() -> None:
        AsyncClient(base_url, api_key)

    with pytest.raises(InvalidInputError) as aio:
        asyncio.run(make())
    assert str(sync.value) == str(aio.value)
    return str(sync.value)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOX_URL", raising=False)
    monkeypatch.delenv("SANDBOX_API_KEY", raising=False)


def test_a_key_with_a_trailing_newline_is_refused_and_not_echoed() -> None:
    message = refused("http://api.test", KEY + "\n")
    assert "api_key ends with a newline" in message and ".strip()" in message
    assert "s" * 43 not in message


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("", "is empty"),
        (" " + KEY, "whitespace around it"),
        ("Bearer " + KEY, "starts with 'Bearer '"),
        ("http://api.test", "is a URL"),
        ("sbx_0123 456789ab", "position 9"),
        ("sbx_é", "HTTP header cannot carry"),
    ],
)
def test_a_malformed_key_is_refused_with_what_is_wrong(key: str, says: str) -> None:
    assert says in refused("http://api.test", key)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h:8080/v1", "ends in /v1: give the server's base URL, 'http://h:8080'"),
        ("http://h:8080/v1/", "ends in /v1"),
        ("https://h/mcp", "is the MCP endpoint"),
        ("localhost:8080", "not an http:// or https:// URL"),
        ("http://h:8080?x=1", "query or fragment"),
        ("http://h:8080\n", "spaces or a newline"),
    ],
)
def test_a_base_url_that_names_an_endpoint_or_no_server_is_explained(url: str, says: str) -> None:
    assert says in refused(url, KEY)


def test_a_base_url_under_a_path_prefix_keeps_it() -> None:
    seen: list[httpx.Request] = []
    with Client("https://gw.test/sandbox/", KEY, transport=recorder(seen)) as c:
        c.list_skills()
    assert str(seen[0].url) == "https://gw.test/sandbox/v1/skills"


def test_url_and_key_come_from_the_environment_when_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDBOX_URL", "http://env.test:9000/")
    monkeypatch.setenv("SANDBOX_API_KEY", KEY)
    seen: list[httpx.Request] = []
    with Client(transport=recorder(seen)) as c:
        c.list_skills()
    assert str(seen[0].url) == "http://env.test:9000/v1/skills"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"

    async def main() -> None:
        async with AsyncClient(transport=recorder(seen)) as c:
            await c.list_skills()

    asyncio.run(main())
    assert str(seen[1].url) == "http://env.test:9000/v1/skills"
    assert seen[1].headers["authorization"] == f"Bearer {KEY}"


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_URL", "http://env.test")
    monkeypatch.setenv("SANDBOX_API_KEY", "sbx_from_env")
    seen: list[httpx.Request] = []
    with Client("http://arg.test", KEY, transport=recorder(seen)) as c:
        c.list_skills()
    assert seen[0].url.host == "arg.test" and seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_a_malformed_key_in_the_environment_is_named_by_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SANDBOX_API_KEY", KEY + "\n")
    assert refused(None, None).startswith("SANDBOX_API_KEY ends with a newline")


def test_without_url_or_environment_the_local_default_is_used() -> None:
    with Client() as c:
        assert c.base_url == "http://127.0.0.1:8080"
