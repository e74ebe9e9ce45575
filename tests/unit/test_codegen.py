"""The generated code API: safe names, typed signatures, nothing smuggled in by upstream text."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import sys
import types
from pathlib import Path

import pytest

from sandbox.bridge.codegen import generate, render_tool, to_identifier
from sandbox.bridge.search import search
from sandbox.bridge.upstream import ToolInfo

HOSTILE_DESC = 'Evil """\nimport os; os.system("touch /tmp/pwned")\n"""  \\'


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("get_customer", "get_customer"),
        ("Get-Customer", "get_customer"),
        ("class", "class_"),
        ("../../x", "x"),
        ("1st", "t_1st"),
        ("", "tool"),
        ("ünïcödé", "unicode"),
        ("servers", "servers_"),
    ],
)
def test_names_map_to_safe_identifiers(name: str, expected: str) -> None:
    assert to_identifier(name, set()) == expected


def test_colliding_names_get_distinct_identifiers() -> None:
    taken: set[str] = set()
    assert [to_identifier(n, taken) for n in ("a-b", "a_b", "A B")] == ["a_b", "a_b_2", "a_b_3"]


def load(source: str, calls: list[tuple[str, str, dict[str, object]]]) -> types.ModuleType:
    fake = types.ModuleType("sandbox_tools")
    fake.call_tool = lambda s, t, a: calls.append((s, t, a)) or "result"  # type: ignore[attr-defined]
    sys.modules["sandbox_tools"] = fake
    mod = types.ModuleType("generated")
    exec(compile(source, "generated", "exec"), mod.__dict__)  # noqa: S102 - testing generated code
    return mod


def test_signature_follows_the_input_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "customer_id": {"type": "string", "description": "The id."},
            "limit": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mode": {"enum": ["fast", "full"]},
        },
        "required": ["customer_id"],
    }
    calls: list[tuple[str, str, dict[str, object]]] = []
    mod = load(
        render_tool(ToolInfo("crm", "get_customer", "Fetch one.", schema), "get_customer"), calls
    )
    sig = inspect.signature(mod.get_customer)
    assert list(sig.parameters) == ["customer_id", "limit", "mode", "tags"]
    assert sig.parameters["customer_id"].default is inspect.Parameter.empty
    assert sig.parameters["limit"].annotation == "int | None"
    assert sig.parameters["tags"].annotation == "list[str] | None"
    assert sig.parameters["mode"].annotation == "Literal['fast', 'full'] | None"
    assert mod.get_customer.__doc__.startswith("Fetch one.")
    assert mod.get_customer("C-1", limit=3) == "result"
    assert calls == [("crm", "get_customer", {"customer_id": "C-1", "limit": 3})]


def test_hostile_descriptions_and_parameter_names_cannot_inject_code() -> None:
    schema = {
        "properties": {
            "from": {"type": "string", "description": HOSTILE_DESC},
            "../x": {"type": "string"},
            "a-b": {"enum": ["'); import os; ('", 1]},
            "call_tool": {"type": "string"},
        },
        "required": ["from", "../x", "a-b", "call_tool"],
    }
    source = render_tool(ToolInfo('srv"""', 'tool"""', HOSTILE_DESC, schema), "tool")
    tree = ast.parse(source)
    assert not [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "system"
    ]
    calls: list[tuple[str, str, dict[str, object]]] = []
    mod = load(source, calls)
    params = list(inspect.signature(mod.tool).parameters)
    assert all(p.isidentifier() for p in params) and "call_tool" not in params
    mod.tool(*["v"] * 4)
    assert set(calls[0][2]) == {"from", "../x", "a-b", "call_tool"}
    assert calls[0][:2] == ('srv"""', 'tool"""')


def test_generated_tree_stays_inside_its_folder(tmp_path: Path) -> None:
    tools = [
        ToolInfo("../../etc", "../../passwd", HOSTILE_DESC, {}),
        ToolInfo("/abs", "a" * 300, "", {}),
        ToolInfo("crm", "get", "Get one.", {}),
    ]
    out = tmp_path / "api" / "servers"
    generated = generate(tools, out)
    assert {g.module for g in generated} == {"etc", "abs", "crm"}
    for path in tmp_path.rglob("*"):
        assert out in path.parents or path in (out, out.parent)
    for py in out.rglob("*.py"):
        ast.parse(py.read_text())
    index = json.loads((out / "index.json").read_text())
    assert {t["import"] for t in index} >= {"from servers.crm import get"}


def test_search_ranks_name_matches_first_and_detail_controls_the_shape() -> None:
    index = [
        {
            "server": "crm",
            "name": "get_customer",
            "import": "i1",
            "description": "Fetch a customer.",
            "input_schema": {},
        },
        {
            "server": "mailer",
            "name": "send_email",
            "import": "i2",
            "description": "Email a customer.",
            "input_schema": {"x": 1},
        },
    ]
    assert [t["name"] for t in search(index, "email")] == ["mailer.send_email"]
    assert search(index, "customer")[0]["name"] == "crm.get_customer"
    assert set(search(index, "", "name")[0]) == {"name", "import"}
    assert search(index, "send", "schema")[0]["input_schema"] == {"x": 1}
    with pytest.raises(ValueError, match="detail"):
        search(index, "x", "everything")


def test_the_search_module_needs_only_the_stdlib() -> None:
    src = Path(importlib.util.find_spec("sandbox.bridge.search").origin).read_text()  # type: ignore[arg-type, union-attr]
    imports = {
        a.name.split(".")[0]
        for n in ast.walk(ast.parse(src))
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in (
            n.names if isinstance(n, ast.Import) else [type("A", (), {"name": n.module or ""})]
        )
    }
    assert imports <= set(sys.stdlib_module_names)
