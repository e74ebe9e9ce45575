"""A wrong key on /mcp is an invalid token, not an OAuth challenge: the MCP SDK client reports
a plain auth error, and one set up for OAuth finds nothing to sign in to (so it never opens a
browser). Over a real uvicorn server on the local-process backend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.keys import KeyStore
from tests.integration.test_http_api import Server
from tests.unit.conftest import MakeOrc

WRONG = "sbx_000000000000_" + "A" * 43
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
OAUTH_PATHS = (
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server/mcp",
    "/.well-known/openid-configuration",
)


@pytest.fixture
def served(make_orc: MakeOrc) -> Iterator[tuple[str, str]]:
    orc = make_orc(api={"rate_per_s": 500, "rate_burst": 500})
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    with Server(orc, keys) as server:
        yield server.url, keys.create("alice")[1]


def list_tools(url: str, key: str | None, mode: str, auth: Any = None) -> Any:
    import httpx2
    from mcp import Client as McpClient

    from sandbox.bridge.upstream import _HttpTransport

    async def main() -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        http = httpx2.AsyncClient(headers=headers, timeout=30, auth=auth)
        async with McpClient(_HttpTransport(url, http), mode=mode) as c:  # type: ignore[arg-type]
            return await c.list_tools()

    return asyncio.run(asyncio.wait_for(main(), 60))


def leaf(exc: BaseException) -> BaseException:
    """The one error inside the task groups' ExceptionGroups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def test_a_wrong_key_on_mcp_is_an_invalid_token_with_no_oauth_hints(
    served: tuple[str, str],
) -> None:
    url, _ = served
    r = httpx.post(f"{url}/mcp", json=INIT, headers={"Authorization": f"Bearer {WRONG}"})
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token"')
    assert "resource_metadata" not in challenge and "scope" not in challenge
    body = r.json()
    assert body["jsonrpc"] == "2.0" and body["error"]["data"] == {"code": "unauthorized"}
    assert body["error"]["message"].startswith("unauthorized: the API key was not accepted")


def test_no_key_on_mcp_is_a_bare_bearer_challenge(served: tuple[str, str]) -> None:
    url, _ = served
    r = httpx.post(f"{url}/mcp", json=INIT)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer <key>" in r.json()["error"]["message"]


def test_there_is_no_oauth_metadata_to_discover(served: tuple[str, str]) -> None:
    url, _ = served
    for path in OAUTH_PATHS:
        assert httpx.get(url + path).status_code == 404, path
    assert httpx.post(f"{url}/register", json={"redirect_uris": ["http://x"]}).status_code == 404
    assert httpx.get(f"{url}/authorize").status_code == 404


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_the_sdk_client_reports_a_wrong_key_as_a_plain_auth_error(
    served: tuple[str, str], mode: str
) -> None:
    from mcp import MCPError

    url, good = served
    with pytest.raises(BaseException) as info:  # noqa: PT011 - the SDK wraps it in task groups
        list_tools(f"{url}/mcp", WRONG, mode)
    error = leaf(info.value)
    assert isinstance(error, MCPError), error
    assert str(error).startswith("unauthorized: the API key was not accepted")
    assert len(list_tools(f"{url}/mcp", good, mode).tools) > 0  # the right key works


def test_an_sdk_client_set_up_for_oauth_never_reaches_a_sign_in(served: tuple[str, str]) -> None:
    from mcp.client.auth import OAuthClientProvider, OAuthFlowError, OAuthRegistrationError
    from mcp.shared.auth import OAuthClientMetadata

    url, _ = served
    redirected: list[str] = []

    class Memory:
        async def get_tokens(self) -> None:
            return None

        async def set_tokens(self, tokens: object) -> None:
            raise AssertionError("no tokens can be issued")

        async def get_client_info(self) -> None:
            return None

        async def set_client_info(self, info: object) -> None:
            raise AssertionError("no client can be registered")

    async def redirect(authorization_url: str) -> None:
        redirected.append(authorization_url)

    provider = OAuthClientProvider(
        f"{url}/mcp",
        OAuthClientMetadata(redirect_uris=["http://127.0.0.1:9/callback"]),  # type: ignore[list-item]
        Memory(),
        redirect_handler=redirect,
    )
    with pytest.raises(BaseException) as info:  # noqa: PT011 - the flow's error, in task groups
        list_tools(f"{url}/mcp", WRONG, "legacy", auth=provider)
    assert isinstance(leaf(info.value), OAuthFlowError | OAuthRegistrationError)  # /register: 404
    assert redirected == []
