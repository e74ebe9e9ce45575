"""Per-owner declarations: the config format, owner-scoped secrets, and who sees which tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sandbox import Orchestrator
from sandbox.bridge.config import StdioServer, load_config
from sandbox.core.admission import Principal
from sandbox.exceptions import InvalidInputError, NotFoundError
from sandbox.secrets import SecretError, SecretStore
from tests.unit.conftest import MakeOrc

TENANT = str(Path(__file__).parents[1] / "servers" / "tenant.py")


def tenant(**extra: object) -> dict[str, object]:
    return {"command": sys.executable, "args": [TENANT], **extra}


# -- the config -----------------------------------------------------------------------------


def test_servers_run_per_owner_unless_marked_shared() -> None:
    cfg = load_config({"mcpServers": {"a": tenant(), "b": tenant(shared=True)}})
    assert not cfg.servers["a"].shared and cfg.servers["b"].shared


def test_an_owner_reaches_the_deployments_servers_and_only_their_own() -> None:
    cfg = load_config(
        {
            "mcpServers": {"mailer": tenant()},
            "owners": {"alice": {"mcpServers": {"diary": tenant()}}, "bob": {"mcpServers": {}}},
        }
    )
    assert cfg.spec("mailer", "bob") == (cfg.servers["mailer"], False)
    found = cfg.spec("diary", "alice")
    assert found is not None and isinstance(found[0], StdioServer) and found[1] is True
    assert cfg.spec("diary", "bob") is None and cfg.spec("diary", None) is None


@pytest.mark.parametrize(
    ("owners", "why"),
    [
        ({"alice": {"mcpServers": {"mailer": tenant()}}}, "already deployment servers"),
        ({"../x": {"mcpServers": {}}}, "owner ids match"),
        ({"alice": {"mcpServers": {"d": tenant(shared=True)}}}, "cannot be shared"),
        ({"alice": {"servers": {}}}, "Extra inputs"),
    ],
)
def test_bad_owner_declarations_are_refused(owners: object, why: str) -> None:
    with pytest.raises(InvalidInputError, match=why):
        load_config({"mcpServers": {"mailer": tenant()}, "owners": owners})


# -- owner-scoped secrets -------------------------------------------------------------------


def store(tmp_path: Path) -> SecretStore:
    return SecretStore(tmp_path / "secrets.json", b"k" * 32)


def test_an_owners_secret_is_theirs_and_stands_before_the_deployments(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.set("TOKEN", "deployment")
    s.set("TOKEN", "alice's", owner="alice")
    assert s.get("TOKEN") == "deployment" and s.get("TOKEN", "alice") == "alice's"
    assert s.names() == ["TOKEN"] and s.names("alice") == ["TOKEN"] and s.owners() == ["alice"]
    assert s.resolve("${secret:TOKEN}", "alice") == "alice's"
    assert s.resolve("${secret:TOKEN}", "bob") == "deployment"
    assert s.resolve("${secret:TOKEN}") == "deployment"
    with pytest.raises(NotFoundError, match="for owner 'bob'"):
        s.resolve("${secret:TOKEN}", "bob", deployment=False)
    with pytest.raises(NotFoundError):
        s.get("TOKEN", "bob")  # never the deployment's in an owner's place
    assert "alice's" not in (tmp_path / "secrets.json").read_text()


def test_an_owners_secret_moved_to_another_owner_does_not_decrypt(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.set("TOKEN", "alice's", owner="alice")
    s.set("TOKEN", "deployment")
    doc = json.loads((tmp_path / "secrets.json").read_text())
    doc["owners"]["bob"] = doc["owners"]["alice"]
    doc["secrets"]["TOKEN"] = doc["owners"]["alice"]["TOKEN"]
    (tmp_path / "secrets.json").write_text(json.dumps(doc))
    with pytest.raises(SecretError):
        s.get("TOKEN", "bob")
    with pytest.raises(SecretError):
        s.get("TOKEN")


def test_owner_secrets_are_rotated_and_deleted_with_the_rest(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.set("A", "1")
    s.set("A", "2", owner="alice")
    s.rotate(b"n" * 32)
    assert (s.get("A"), s.get("A", "alice")) == ("1", "2")
    s.delete("A", owner="alice")
    assert s.owners() == [] and s.get("A") == "1"
    with pytest.raises(NotFoundError):
        s.delete("A", owner="alice")
    with pytest.raises(InvalidInputError):
        s.set("A", "x", owner="not/an/id")


# -- who sees which tools -------------------------------------------------------------------


@pytest.fixture
def orc(make_orc: MakeOrc, tmp_path: Path) -> Orchestrator:
    mcp = tmp_path / "mcp.json"
    mcp.write_text(
        json.dumps(
            {
                "mcpServers": {"notes": tenant()},
                "owners": {"alice": {"mcpServers": {"diary": tenant()}}},
            }
        )
    )
    return make_orc(mcp_config=mcp, pii={"enabled": False})


def names(found: list[dict[str, object]]) -> set[str]:
    return {str(t["name"]).split(".")[0] for t in found}


def test_an_owners_own_server_is_listed_for_that_owner_only(orc: Orchestrator) -> None:
    def listed(owner: str) -> set[str]:
        return names(orc.search_tools(detail="name", limit=200, principal=Principal(owner, "k")))

    assert listed("alice") == {"notes", "diary"}
    assert listed("bob") == {"notes"}
    assert names(orc.search_tools(detail="name", limit=200)) == {"notes"}
    with orc.session(owner="alice") as a, orc.session(owner="bob") as b:
        assert names(a.search_tools(detail="name", limit=200)) == {"notes", "diary"}
        assert names(b.search_tools(detail="name", limit=200)) == {"notes"}


def test_an_owners_own_server_is_in_their_code_api_and_callable_by_them_only(
    orc: Orchestrator,
) -> None:
    code = """
import os
print(sorted(n for n in os.listdir(os.environ["SBX_ROOT"] + "/servers") if not n.startswith("_")))
from sandbox_tools import call_tool, ToolNotFoundError
try:
    print(call_tool("diary", "remember", {"text": "mine"}))
except ToolNotFoundError as e:
    print("not found", e.code)
"""
    with orc.session(owner="alice") as a, orc.session(owner="bob") as b:
        mine, theirs = a.run(code), b.run(code)
    assert mine.stdout == "['diary', 'index.json', 'notes']\n1\n", mine.stderr
    assert theirs.stdout == "['index.json', 'notes']\nnot found not_found\n"


def test_the_cli_keeps_an_owners_secrets_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from sandbox.cli import app

    monkeypatch.setenv("SANDBOX_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SANDBOX_SECRET_KEY", "k" * 32)
    run = CliRunner().invoke
    assert run(app, ["secrets", "set", "TOKEN", "--owner", "alice"], input="a-1\n").exit_code == 0
    assert run(app, ["secrets", "set", "TOKEN"], input="d-1\n").exit_code == 0
    assert run(app, ["secrets", "list", "--owner", "alice"]).output == "TOKEN\n"
    assert run(app, ["secrets", "list", "--owners"]).output == "alice\n"
    assert store_at(tmp_path).get("TOKEN", "alice") == "a-1"
    assert run(app, ["secrets", "delete", "TOKEN", "--owner", "alice"]).exit_code == 0
    assert run(app, ["secrets", "list", "--owners"]).output == ""
    assert store_at(tmp_path).get("TOKEN") == "d-1"
    assert run(app, ["secrets", "set", "T", "--owner", "../x"], input="v\n").exit_code != 0


def store_at(data_dir: Path) -> SecretStore:
    return SecretStore(data_dir / "secrets.json", b"k" * 32)


def test_get_v1_tools_shows_an_owners_own_servers_to_that_owners_keys_only(
    orc: Orchestrator,
) -> None:
    import asyncio

    import httpx

    from sandbox.http_api import create_app
    from sandbox.keys import KeyStore

    keys = KeyStore(orc.settings.data_dir / "keys.json")

    async def listed(owner: str) -> set[str]:
        secret = keys.create(owner)[1]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(orchestrator=orc, keys=keys)),
            base_url="http://api",
            headers={"Authorization": f"Bearer {secret}"},
        ) as c:
            r = await c.get("/v1/tools", params={"detail": "name", "limit": "200"})
        assert r.status_code == 200
        return names(r.json())

    assert asyncio.run(listed("alice")) == {"notes", "diary"}
    assert asyncio.run(listed("bob")) == {"notes"}
