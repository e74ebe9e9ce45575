"""What servers say of their tools reaches every model: PII in it is redacted, not tokenized."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sandbox.pii.redact import redact, redact_schema
from tests.unit.conftest import MakeOrc

TENANT = str(Path(__file__).parents[2] / "servers" / "tenant.py")
NOTE = " Escalations: maria.gonzalez@example.com, +1 415-555-0132."


def test_redact_names_the_entity_and_keeps_the_rest() -> None:
    assert redact("mail maria.gonzalez@example.com now") == "mail [EMAIL] now"
    assert redact("nothing here") == "nothing here"


def test_redact_schema_covers_human_text_only() -> None:
    schema = {
        "type": "object",
        "title": "To maria.gonzalez@example.com",
        "properties": {
            "to": {"type": "string", "description": "e.g. maria.gonzalez@example.com"},
            "maria.gonzalez@example.com": {"type": "string"},
        },
        "examples": [{"to": "maria.gonzalez@example.com"}],
    }
    out = redact_schema(schema)
    assert out["title"] == "To [EMAIL]"
    assert out["properties"]["to"]["description"] == "e.g. [EMAIL]"
    assert out["examples"] == [{"to": "[EMAIL]"}]
    # A property's name is part of the contract: kept, as the tool needs it.
    assert "maria.gonzalez@example.com" in out["properties"]


def test_tool_descriptions_from_a_server_reach_nobody_raw(
    make_orc: MakeOrc, tmp_path: Path
) -> None:
    mcp = tmp_path / "mcp.json"
    server = {"command": sys.executable, "args": [TENANT], "env": {"TENANT_NOTE": NOTE}}
    mcp.write_text(json.dumps({"mcpServers": {"notes": server}}))
    orc = make_orc(mcp_config=mcp)
    found = orc.search_tools("whoami", detail="schema", limit=5)
    text = json.dumps(found)
    assert "maria" not in text and "555-0132" not in text
    assert "[EMAIL]" in text and "[PHONE]" in text
    with orc.session(owner="alice") as s:
        r = s.run("import servers.notes as n; print(n.whoami.__doc__)")
        assert "maria" not in r.stdout and "[EMAIL]" in r.stdout, (r.stdout, r.stderr)
