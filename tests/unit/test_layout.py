"""The package stays in rooms a newcomer can hold in their head."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "sandbox"
MAX_MODULE_LINES = 420
MAX_FUNCTION_LINES = 85


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "_images" not in p.parts)


def test_no_module_is_too_long_to_hold_in_your_head() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in modules()
        if (n := p.read_text().count("\n")) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_too_long_to_read_at_once() -> None:
    long = {}
    for p in modules():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long[f"{p.relative_to(PACKAGE)}:{node.name}"] = size
    assert long == {}


def test_core_classes_touch_no_private_member_of_another_object() -> None:
    found = []
    for p in sorted((PACKAGE / "core").glob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{p.name}:{node.lineno} .{node.attr}")
    assert found == []


def test_only_the_docker_backend_imports_docker() -> None:
    importers = []
    for p in modules():
        for node in ast.walk(ast.parse(p.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "docker" or n.startswith("docker.") for n in names):
                importers.append(str(p.relative_to(PACKAGE)))
    assert sorted(set(importers)) == ["backends/docker.py"]


def test_the_runtime_imports_nothing_of_the_controller() -> None:
    def outside(name: str) -> bool:
        return name.startswith("sandbox") and not name.startswith("sandbox.runtime")

    for p in (PACKAGE / "runtime").glob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not outside(node.module), f"{p.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(outside(a.name) for a in node.names), p.name
