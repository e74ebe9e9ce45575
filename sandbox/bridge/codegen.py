"""Generates the code API the sandbox imports: `from servers.crm import get_customer`.

One module per tool (`servers/<server>/<tool>.py`: typed signature from the tool's
inputSchema, docstring from its description), an `__init__.py` per server re-exporting its
tools, `servers/index.json` for search, and `servers/_search.py`. Upstream names are never
trusted: every server, tool and parameter name is mapped to a checked identifier, files are
only ever named by those identifiers, and every generated module is re-parsed and checked
before it is written.
"""

from __future__ import annotations

import ast
import json
import keyword
import re
import shutil
import unicodedata
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.bridge.upstream import ToolInfo

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_RESERVED = {"servers", "sandbox_tools", "index", "_search"}
_SEARCH_SRC = Path(__file__).with_name("search.py")


def to_identifier(name: str, taken: set[str]) -> str:
    """Map any upstream name to a fresh, safe, lower-case Python identifier."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ident = re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")[:48] or "tool"
    if ident[0].isdigit():
        ident = "t_" + ident
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident) or ident in _RESERVED:
        ident += "_"
    base, n = ident, 2
    while ident in taken:
        ident = f"{base}_{n}"
        n += 1
    if not _IDENT.fullmatch(ident):
        raise ValueError(f"cannot map {name!r} to an identifier")
    taken.add(ident)
    return ident


@dataclass(frozen=True)
class GeneratedTool:
    server: str
    tool: str
    module: str
    func: str


def _py_type(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "Any"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str | int | bool) for v in enum):
        return "Literal[" + ", ".join(repr(v) for v in enum[:50]) + "]"
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    simple = {
        "string": "str",
        "integer": "int",
        "number": "float",
        "boolean": "bool",
        "null": "None",
    }
    if kind in simple:
        return simple[kind]
    if kind == "array":
        return f"list[{_py_type(schema.get('items'))}]"
    if kind == "object":
        return "dict[str, Any]"
    return "Any"


def _doc(text: str) -> str:
    """Text made safe to sit inside a triple-quoted docstring."""
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())[:4000]
    # Trailing quotes or backslashes would merge with the closing quotes: drop them first,
    # then escape, so the result never ends inside an escape.
    text = text.rstrip().rstrip('"\\')
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def render_tool(info: ToolInfo, func: str) -> str:
    props = info.input_schema.get("properties") if isinstance(info.input_schema, dict) else None
    props = props if isinstance(props, dict) else {}
    required = info.input_schema.get("required", []) if isinstance(info.input_schema, dict) else []
    required = {r for r in required if isinstance(r, str)}
    taken: set[str] = {"call_tool", "Any", "Literal", "annotations", func}
    params_req, params_opt, mapping, arg_docs = [], [], [], []
    for key in sorted(props, key=lambda k: (k not in required, k)):
        if not isinstance(key, str):
            continue
        ident = to_identifier(key, taken)
        annotation = _py_type(props[key])
        if key in required:
            params_req.append(f"{ident}: {annotation}")
        else:
            params_opt.append(f"{ident}: {annotation} | None = None")
        mapping.append((key, ident, key in required))
        desc = props[key].get("description", "") if isinstance(props[key], dict) else ""
        arg_docs.append(
            f"        {ident}: {_doc(str(desc)).splitlines()[0] if desc else annotation}"
        )
    params = params_req + (["*"] if params_opt and not params_req else []) + params_opt
    lines = [
        f'"""{_doc(info.server)}.{_doc(info.name)}: generated from the MCP server\'s tool listing."""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any, Literal  # noqa: F401",
        "",
        "from sandbox_tools import call_tool",
        "",
        f"SERVER = {info.server!r}",
        f"TOOL = {info.name!r}",
        f"INPUT_SCHEMA = {json.dumps(info.input_schema, sort_keys=True)!r}",
        "",
        "",
        f"def {func}({', '.join(params)}) -> Any:",
        f'    """{_doc(info.description) or _doc(info.name)}',
    ]
    if arg_docs:
        lines += ["", "    Args:", *arg_docs]
    lines += ['    """', "    args: dict[str, Any] = {}"]
    for key, ident, req in mapping:
        if req:
            lines.append(f"    args[{key!r}] = {ident}")
        else:
            lines += [f"    if {ident} is not None:", f"        args[{key!r}] = {ident}"]
    lines += ["    return call_tool(SERVER, TOOL, args)", ""]
    source = "\n".join(lines)
    _check(source, func)
    return source


def _check(source: str, func: str) -> None:
    """The module must parse and contain exactly the statements we emit, nothing smuggled in."""
    with warnings.catch_warnings():
        # An invalid escape is a bug here, not a warning.
        warnings.simplefilter("error", SyntaxWarning)
        warnings.simplefilter("error", DeprecationWarning)
        tree = ast.parse(source)
    kinds = [type(node).__name__ for node in tree.body]
    if kinds != [
        "Expr",
        "ImportFrom",
        "ImportFrom",
        "ImportFrom",
        "Assign",
        "Assign",
        "Assign",
        "FunctionDef",
    ]:
        raise ValueError(f"generated module for {func} has an unexpected shape: {kinds}")
    fn = tree.body[-1]
    if not isinstance(fn, ast.FunctionDef) or fn.name != func or fn.decorator_list:
        raise ValueError(f"generated function {func} has an unexpected shape")


def generate(tools: Iterable[ToolInfo], out: Path) -> list[GeneratedTool]:
    """Write the `servers` package into `out` (a folder the controller owns), replacing it."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, mode=0o755)
    by_server: dict[str, list[ToolInfo]] = {}
    for t in tools:
        by_server.setdefault(t.server, []).append(t)
    server_idents: set[str] = set()
    generated: list[GeneratedTool] = []
    index: list[dict[str, Any]] = []
    init_lines = ['"""MCP servers as Python modules. `search_tools(query)` finds tools."""', ""]
    for server in sorted(by_server):
        module = to_identifier(server, server_idents)
        pkg = out / module
        pkg.mkdir(mode=0o755)
        func_idents: set[str] = {"call_tool"}
        exports = []
        for info in sorted(by_server[server], key=lambda t: t.name):
            func = to_identifier(info.name, func_idents)
            (pkg / f"{func}.py").write_text(render_tool(info, func))
            exports.append(func)
            generated.append(GeneratedTool(server, info.name, module, func))
            index.append(
                {
                    "server": server,
                    "name": info.name,
                    "import": f"from servers.{module} import {func}",
                    "description": info.description,
                    "input_schema": info.input_schema,
                }
            )
        (pkg / "__init__.py").write_text(
            f'"""Tools of the MCP server {_doc(server)!s}."""\n\n'
            + "".join(f"from .{f} import {f}\n" for f in exports)
            + f"\n__all__ = {sorted(exports)!r}\n"
        )
        init_lines.append(f"# {module}: {len(exports)} tools")
    init_lines += [
        "",
        "import json as _json",
        "import os as _os",
        "",
        "from ._search import search as _search",
        "",
        "",
        'def search_tools(query: str = "", detail: str = "summary", limit: int = 20) -> list:',
        '    """Find tools by keywords. detail: "name", "summary" or "schema"."""',
        '    with open(_os.path.join(_os.path.dirname(__file__), "index.json")) as f:',
        "        return _search(_json.load(f), query, detail, limit)",
        "",
    ]
    (out / "__init__.py").write_text("\n".join(init_lines))
    (out / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True))
    shutil.copy(_SEARCH_SRC, out / "_search.py")
    for path in out.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return generated
