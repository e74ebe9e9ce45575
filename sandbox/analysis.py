"""Static checks of submitted Python, advisory ("warn") or blocking ("block") per profile.

These catch the obvious (ctypes, fork loops, shell=True), not the determined: code can hide
anything from an AST walk (exec of a built string, importlib, bytecode). The container is the
boundary; this is a signal for operators and a speed bump for careless agents.
"""

from __future__ import annotations

import ast
from typing import Literal

from pydantic import BaseModel, ConfigDict

Mode = Literal["off", "warn", "block"]


class AnalysisFinding(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    line: int
    message: str


_SHELL_CALLS = {("os", "system"), ("os", "popen"), ("os", "execl"), ("os", "execlp")}


def _name(node: ast.expr) -> tuple[str, str] | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id, node.attr
    return None


def analyze(code: str) -> list[AnalysisFinding]:
    """Findings in `code`; code that does not parse has none (the run reports the SyntaxError)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    found: list[AnalysisFinding] = []

    def add(rule: str, node: ast.AST, message: str) -> None:
        found.append(AnalysisFinding(rule=rule, line=getattr(node, "lineno", 0), message=message))

    loops: list[ast.AST] = []

    class Visitor(ast.NodeVisitor):
        def visit_Import(self, node: ast.Import) -> None:
            for alias in node.names:
                if alias.name.split(".")[0] == "ctypes":
                    add("ctypes", node, "imports ctypes (raw memory and system calls)")
            self.generic_visit(node)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if (node.module or "").split(".")[0] == "ctypes":
                add("ctypes", node, "imports from ctypes (raw memory and system calls)")
            self.generic_visit(node)

        def _loop(self, node: ast.While | ast.For) -> None:
            loops.append(node)
            self.generic_visit(node)
            loops.pop()

        visit_While = _loop
        visit_For = _loop

        def visit_Call(self, node: ast.Call) -> None:
            target = _name(node.func)
            if target in {("os", "fork"), ("os", "forkpty")} and loops:
                add("fork_loop", node, "forks inside a loop (a fork bomb hits the pids limit)")
            if target in _SHELL_CALLS:
                add("shell", node, f"{target[0]}.{target[1]} runs a shell command")
            if (
                target
                and target[0] == "subprocess"
                and any(
                    kw.arg == "shell" and isinstance(kw.value, ast.Constant) and kw.value.value
                    for kw in node.keywords
                )
            ):
                add("shell", node, f"subprocess.{target[1]} with shell=True")
            self.generic_visit(node)

    Visitor().visit(tree)
    return found
