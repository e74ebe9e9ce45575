"""Tokens, rate limits, allowlists and config parsing of the tool bridge (no engine, no servers)."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import pytest

from sandbox.audit import AuditKeys, AuditLog
from sandbox.bridge.config import HttpServer, StdioServer, load_config
from sandbox.bridge.endpoint import RunContext, ToolBridge, allowed
from sandbox.bridge.tokens import TokenRefused, TokenRegistry, token_id
from sandbox.bridge.upstream import ToolInfo
from sandbox.exceptions import InvalidInputError
from sandbox.models import ToolLimits
from sandbox.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refusal(reg: TokenRegistry, token: object, session: str = "s1", exec_id: str = "e1") -> str:
    with pytest.raises(TokenRefused) as info:
        reg.check(token, session, exec_id)
    return info.value.reason


def test_a_minted_token_is_long_random_and_accepted_for_its_run_only() -> None:
    reg = TokenRegistry()
    token = reg.mint("s1", "e1", 60)
    assert len(token) >= 43 and token != reg.mint("s1", "e2", 60)
    reg.check(token, "s1", "e1")
    assert refusal(reg, token, "s1", "e2") == "wrong_run"
    assert refusal(reg, token, "s2", "e1") == "wrong_session"


@pytest.mark.parametrize("bad", [None, "", 42, "x" * 1000])
def test_missing_or_malformed_tokens_are_refused(bad: object) -> None:
    reg = TokenRegistry()
    reg.mint("s1", "e1", 60)
    assert refusal(reg, bad) in ("missing", "malformed")


def test_a_same_length_token_with_one_byte_flipped_is_forged() -> None:
    reg = TokenRegistry()
    token = reg.mint("s1", "e1", 60)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert refusal(reg, flipped) == "forged"


def test_a_revoked_token_is_a_replay() -> None:
    reg = TokenRegistry()
    token = reg.mint("s1", "e1", 60)
    reg.revoke("e1")
    assert refusal(reg, token) == "replayed"
    assert reg.live() == 0


def test_expiry_follows_the_injected_clock() -> None:
    clock = Clock()
    reg = TokenRegistry(clock)
    token = reg.mint("s1", "e1", 30)
    clock.now += 29.9
    reg.check(token, "s1", "e1")
    clock.now += 0.2
    assert refusal(reg, token) == "expired"


def test_only_digests_are_stored() -> None:
    reg = TokenRegistry()
    token = reg.mint("s1", "e1", 60)
    assert token not in repr(vars(reg))
    assert len(token_id(token)) == 8 and token_id(token) in token_id(token) + "x"


def test_secrets_are_never_compared_with_equals_in_the_token_module() -> None:
    src = Path("sandbox/bridge/tokens.py").read_text()
    compares = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Compare)]
    names = {
        ast.unparse(n) for n in compares if any(isinstance(o, ast.Eq | ast.NotEq) for o in n.ops)
    }
    assert not [n for n in names if "digest" in n or "token ==" in n], names


def test_the_rate_limiter_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5
    assert bucket.take() and not bucket.take()


@pytest.mark.parametrize(
    ("patterns", "server", "tool", "ok"),
    [
        (None, "a", "b", True),
        (("crm.*",), "crm", "x", True),
        (("crm.*",), "mailer", "x", False),
        (("crm.get",), "crm", "getx", False),
        (("*",), "any", "thing", True),
        ((), "a", "b", False),
    ],
)
def test_allowlist_patterns(
    patterns: tuple[str, ...] | None, server: str, tool: str, ok: bool
) -> None:
    assert allowed(patterns, server, tool) is ok


def test_mcp_servers_config_picks_the_transport(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "crm": {"command": "python", "args": ["crm.py"], "env": {"K": "v"}},
                    "remote": {
                        "url": "https://mcp.example.com/mcp",
                        "headers": {"Authorization": "Bearer x"},
                    },
                }
            }
        )
    )
    cfg = load_config(path)
    assert isinstance(cfg.servers["crm"], StdioServer) and cfg.servers["crm"].args == ["crm.py"]
    assert isinstance(cfg.servers["remote"], HttpServer)


@pytest.mark.parametrize(
    "bad", ["not json", '{"servers": {}}', '{"mcpServers": {"x": {"args": []}}}']
)
def test_bad_mcp_config_is_a_typed_error(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(bad)
    with pytest.raises(InvalidInputError):
        load_config(path)
    with pytest.raises(InvalidInputError):
        load_config(tmp_path / "missing.json")


def test_bad_frames_get_typed_refusals_before_any_upstream_is_touched(tmp_path: Path) -> None:
    # A bridge with no servers: every refusal below happens before an upstream would be asked.
    audit = AuditLog(tmp_path / "audit.log", AuditKeys.load_or_create(tmp_path / "audit-keys.json"))
    bridge = ToolBridge(
        load_config({"mcpServers": {}}), tmp_path / "api", audit, ToolLimits(max_args_bytes=1024)
    )
    try:
        token = bridge.tokens.mint("s", "e", 60)
        ctx = RunContext("o", "s", "e", ("crm.*",), TokenBucket(1, 1))

        def call(body: bytes) -> dict[str, object]:
            frame = asyncio.run_coroutine_threadsafe(
                bridge.handle(ctx, body), bridge.upstreams.loop
            ).result(5)
            return json.loads(frame.split(b"\n", 1)[1])  # type: ignore[no-any-return]

        def code(body: bytes) -> object:
            return call(body)["error"]["code"]  # type: ignore[index]

        good = {"id": 1, "token": token, "server": "crm", "tool": "get", "args": {}}
        assert code(b"{" * 2000) == "too_large"
        assert code(b"not json") == "bad_request"
        assert code(b"[1]") == "bad_request"
        assert code(json.dumps({**good, "token": "nope"}).encode()) == "unauthorized"
        assert code(json.dumps({**good, "args": [1]}).encode()) == "bad_request"
        assert code(json.dumps({**good, "server": "mailer"}).encode()) == "forbidden"
        assert code(json.dumps(good).encode()) == "not_found"  # allowed, token fine, no such server
        assert code(json.dumps(good).encode()) == "rate_limited"  # burst of 1 used up
        bridge.records.flush()
        records = audit.read()

        def total(event: str) -> int:
            return sum(int(r.get("count", 1)) for r in records if r["event"] == event)

        # Every call is on the record: refusals aggregated (with a count), the rest one each.
        assert total("tool_call") + total("tool_refused") == 8
        assert (
            total("tool_refused") == 8 and total("token_refused") == 1
        )  # no such tool: refused too
    finally:
        bridge.close()
        audit.close()


class _FakeUpstreams:
    """Stands in for the upstream pool: records what each call received, answers `reply`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, reply: object) -> None:
        self.loop, self.reply, self.received = loop, reply, []  # type: ignore[var-annotated]

    async def call(
        self, server: str, tool: str, args: dict[str, object], *_: object, **__: object
    ) -> object:
        self.received.append((server, tool, args))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply(args) if callable(self.reply) else self.reply

    def close(self) -> None:
        pass


def bridge_call(
    tmp_path: Path,
    target: tuple[str, str],
    args: dict[str, object],
    reply: object,
    policy: object = None,
    output_schema: dict[str, object] | None = None,
) -> tuple[dict[str, object], _FakeUpstreams, list[dict[str, object]], str]:
    """One call through `ToolBridge.handle` to a fake upstream, with a session tokenizer whose
    vault holds crm's [EMAIL_1], [IBAN_1] and [PERSON_1]; returns the reply frame, the fake,
    the audit records and the audit file's text."""
    from sandbox.pii import MasterKeys, Tokenizer
    from sandbox.pii.policy import RestorePolicy

    audit = AuditLog(tmp_path / "audit.log", AuditKeys.load_or_create(tmp_path / "audit-keys.json"))
    bridge = ToolBridge(load_config({"mcpServers": {}}), tmp_path / "api", audit)
    real_pool = bridge.upstreams
    fake = _FakeUpstreams(real_pool.loop, reply)
    try:
        tok = Tokenizer.for_session(MasterKeys({"k1": b"k" * 32}, "k1"), "s")
        tok.vault.token_for("EMAIL", "maria@example.com", origin="crm.get_customer")
        tok.vault.token_for("IBAN", "DE89 3704 0044 0532 0130 00", origin="crm.get_customer")
        tok.vault.token_for("PERSON", "Maria Gonzalez", origin="crm.get_customer")
        bridge.upstreams = fake  # type: ignore[assignment]
        bridge._target = lambda ctx, req: (*target, req["args"])  # type: ignore[method-assign]
        info = ToolInfo(target[0], target[1], "", {}, output_schema)
        bridge.catalog.tool = lambda owner, server, tool: info  # type: ignore[method-assign]
        token = bridge.tokens.mint("s", "e", 60)
        ctx = bridge.context("o", "s", "e", None, tok, policy or RestorePolicy())
        body = json.dumps(
            {"id": 1, "token": token, "server": target[0], "tool": target[1], "args": args}
        )
        frame = asyncio.run_coroutine_threadsafe(
            bridge.handle(ctx, body.encode()), real_pool.loop
        ).result(5)
        bridge.records.flush()
        return (
            json.loads(frame.split(b"\n", 1)[1]),
            fake,
            audit.read(),
            (tmp_path / "audit.log").read_text(),
        )
    finally:
        bridge.upstreams = real_pool
        bridge.close()
        audit.close()


def test_a_crm_token_sent_to_the_mailer_is_refused_before_any_upstream(tmp_path: Path) -> None:
    args = {"to": "attacker@evil.example", "body": "[EMAIL_1] [IBAN_1]"}
    reply, fake, records, trail = bridge_call(tmp_path, ("mailer", "send_email"), args, {"ok": 1})
    assert reply["ok"] is False and fake.received == []
    error = reply["error"]
    assert error["code"] == "forbidden"  # type: ignore[index]  # ToolForbiddenError in the box
    assert "[EMAIL_1] (EMAIL from crm.get_customer)" in error["message"]  # type: ignore[index]
    refused = [r for r in records if r["event"] == "pii_restore_refused"]
    assert {(r["entity"], r["origin"], r["to"], r["action"], r["arg"]) for r in refused} == {
        ("EMAIL", "crm.get_customer", "mailer.send_email", "deny", "body"),
        ("IBAN", "crm.get_customer", "mailer.send_email", "deny", "body"),
    }
    assert [r["reason"] for r in records if r["event"] == "tool_refused"] == ["forbidden"]
    assert "maria@example.com" not in trail and "DE89" not in trail


def test_a_rule_lets_the_token_through_and_the_upstream_gets_the_value(tmp_path: Path) -> None:
    from sandbox.pii.policy import RestorePolicy, RestoreRule

    rule = RestoreRule.model_validate(
        {"entities": "EMAIL", "from": "crm.*", "to": "mailer.send_email", "args": "to"}
    )
    reply, fake, _, _ = bridge_call(
        tmp_path,
        ("mailer", "send_email"),
        {"to": "[EMAIL_1]"},
        {"status": "queued"},
        RestorePolicy([rule]),
    )
    assert reply == {"id": 1, "ok": True, "result": {"status": "queued"}}
    assert fake.received == [("mailer", "send_email", {"to": "maria@example.com"})]


def test_a_tool_echoing_a_restored_value_hands_back_only_its_token(tmp_path: Path) -> None:
    # Glued to other text and in another case, detection alone would miss it; `known` does not.
    def echo(args: dict[str, object]) -> object:
        return {"note": f"noted:{str(args['text']).upper()}", "n": 1}

    reply, fake, _, _ = bridge_call(tmp_path, ("crm", "add_note"), {"text": "[IBAN_1]"}, echo)
    assert fake.received[0][2] == {"text": "DE89 3704 0044 0532 0130 00"}
    assert reply["result"] == {"note": "noted:[IBAN_1]", "n": 1}


def test_an_upstream_error_quoting_a_restored_value_names_only_its_token(tmp_path: Path) -> None:
    # A name in free text: no detector would find it there, but the bridge knows it restored it.
    from sandbox.bridge.upstream import UpstreamCallError

    failure = UpstreamCallError("upstream_error", "no customer named 'Maria Gonzalez'")
    reply, _, _, _ = bridge_call(tmp_path, ("crm", "get_customer"), {"name": "[PERSON_1]"}, failure)
    assert reply["error"] == {"code": "upstream_error", "message": "no customer named '[PERSON_1]'"}


def test_the_tools_output_schema_marks_what_its_fields_hold(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"field_7": {"title": "Customer full name"}}}
    reply, _, _, _ = bridge_call(
        tmp_path, ("crm", "lookup"), {}, {"field_7": "Joan Smithers"}, None, schema
    )
    assert reply["result"] == {"field_7": "[PERSON_2]"}  # [PERSON_1] is the vault's Maria
