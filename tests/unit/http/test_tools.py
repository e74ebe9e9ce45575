"""GET /v1/tools lists only the tools the caller's sessions may call."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest

from sandbox import Orchestrator
from sandbox.core.admission import Principal
from sandbox.exceptions import NotFoundError
from sandbox.http_api import create_app
from sandbox.keys import KeyStore
from tests.unit.conftest import MakeOrc

FAULTY = str(Path(__file__).parents[2] / "servers" / "faulty.py")
KEYS = {"any": None, "strict": ["strict"], "narrow": ["narrow"], "both": ["strict", "narrow"]}


@pytest.fixture
def orc(make_orc: MakeOrc, tmp_path: Path) -> Orchestrator:
    mcp = tmp_path / "mcp.json"
    mcp.write_text(
        json.dumps({"mcpServers": {"faulty": {"command": sys.executable, "args": [FAULTY]}}})
    )
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps({"profiles": {"narrow": {"tools": ["faulty.echo"]}}}))
    return make_orc(mcp_config=mcp, profiles=profiles, pii={"enabled": False})


def listed(orc: Orchestrator, key: str, **params: str) -> tuple[int, list[str]]:
    """(status, tool names) of GET /v1/tools for a key limited as KEYS[key] says."""
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    secret = keys.create(f"owner-{key}", KEYS[key])[1]

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(orchestrator=orc, keys=keys)),
            base_url="http://api",
            headers={"Authorization": f"Bearer {secret}"},
        ) as c:
            return await c.get("/v1/tools", params={"detail": "name", "limit": "200", **params})

    r = asyncio.run(get())
    names = sorted(t["name"] for t in r.json()) if r.status_code == 200 else []
    return r.status_code, names


def test_a_key_whose_only_profile_allows_no_tools_is_shown_none(orc: Orchestrator) -> None:
    assert listed(orc, "strict") == (200, [])


def test_a_key_sees_the_tools_of_its_sessions_profile(orc: Orchestrator) -> None:
    status, every = listed(orc, "any")
    assert status == 200 and "faulty.echo" in every and len(every) > 1
    assert listed(orc, "narrow") == (200, ["faulty.echo"])
    assert listed(orc, "both") == (200, [])  # its sessions get "strict" unless they ask
    assert listed(orc, "both", profile="narrow") == (200, ["faulty.echo"])


def test_a_profile_the_key_may_not_use_lists_nothing_and_is_a_404(orc: Orchestrator) -> None:
    assert listed(orc, "narrow", profile="default") == (404, [])
    assert listed(orc, "any", profile="no-such-profile") == (404, [])
    orc.admission.flush()
    refused = [r for r in orc.audit.read() if r["event"] == "admission_refused"]
    assert any(r.get("reason") == "profile_not_allowed" for r in refused)


def test_the_core_filters_by_principal_and_lists_everything_without_one(
    orc: Orchestrator,
) -> None:
    strict = Principal("o", "k1", ("strict",))
    assert orc.search_tools(detail="name", principal=strict) == []
    narrow = orc.search_tools(detail="name", principal=Principal("o", "k2", ("narrow",)))
    assert [t["name"] for t in narrow] == ["faulty.echo"]
    assert len(orc.search_tools(detail="name", limit=200)) > 1  # embedded: the operator
    with pytest.raises(NotFoundError):
        orc.search_tools(principal=strict, profile="narrow")


def test_a_sessions_tool_listing_follows_its_own_allowlist(orc: Orchestrator) -> None:
    keys = KeyStore(orc.settings.data_dir / "keys.json")
    secret = keys.create("owner-sess")[1]

    async def main() -> tuple[list[str], int]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(orchestrator=orc, keys=keys)),
            base_url="http://api",
            headers={"Authorization": f"Bearer {secret}"},
        ) as c:
            sid = (await c.post("/v1/sessions", json={"tools": ["faulty.noop"]})).json()["id"]
            r = await c.get(f"/v1/sessions/{sid}/tools", params={"detail": "name"})
            other = await c.get("/v1/sessions/" + "0" * 32 + "/tools")
            return sorted(t["name"] for t in r.json()), other.status_code

    names, missing = asyncio.run(main())
    assert names == ["faulty.noop"] and missing == 404
