"""A cell of code as the runtime runs it: like a notebook cell.

Its last expression, if it ends with one, is shown (its repr, unless None or the line ends
with ';'), and its source is handed to linecache so tracebacks quote the offending lines.
Loaded by sbxrt.py from this folder; stdlib only, and cheap: nothing is imported until used.
"""

import sys
import types

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec

CELL = "<sandbox>"


def compile_cell(code: str) -> tuple[types.CodeType, types.CodeType | None]:
    """The cell as code: its statements, and its last expression apart when it ends with one,
    to be shown as a notebook shows it (the repr, unless None or the line ends with ';').
    Raises SyntaxError."""
    import _ast  # built in: nothing to read from disk

    tree = compile(code, CELL, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
    if not isinstance(tree, _ast.Module):  # what PyCF_ONLY_AST gives in "exec" mode
        raise SyntaxError("not a module")
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, _ast.Expr) or _silenced(code, last):
        return compile(tree, CELL, "exec", 0, True), None
    tree.body.pop()
    shown = _ast.Interactive(body=[last])
    return compile(tree, CELL, "exec", 0, True), compile(shown, CELL, "single", 0, True)


def _silenced(code: str, last: "ast.Expr") -> bool:
    """The cell's last expression is followed by ';' (IPython's way to show nothing)."""
    lines = code.encode("utf-8", "surrogatepass").splitlines()
    end = (last.end_lineno or 0) - 1
    rest = lines[end][last.end_col_offset or 0 :] if 0 <= end < len(lines) else b""
    return rest.lstrip().startswith(b";")


class CellSource:
    """Hands the cell's source to linecache once something imports it (traceback, warnings,
    pdb), so tracebacks show the offending lines. Importing linecache for every run would
    cost about 8 ms (it pulls in tokenize and re); this costs nothing until it is needed."""

    def __init__(self, code: str) -> None:
        self.entry = (len(code), None, code.splitlines(True), CELL)  # mtime None: kept

    def find_spec(
        self,
        name: str,
        path: "Sequence[str] | None" = None,
        target: types.ModuleType | None = None,
    ) -> "ModuleSpec | None":
        if name != "linecache":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                # Duck-typed: importlib.abc would be one more import for every run.
                spec.loader = Registering(spec.loader, self.entry)  # type: ignore[assignment]
                return spec
        return None

    def install(self) -> None:
        loaded = sys.modules.get("linecache")
        if loaded is not None:
            loaded.cache[CELL] = self.entry
        else:
            sys.meta_path.insert(0, self)


class Registering:
    """linecache's own loader, adding the cell's entry once the module exists."""

    def __init__(self, loader: object, entry: tuple[object, ...]) -> None:
        self.loader, self.entry = loader, entry

    def create_module(self, spec: object) -> object:
        return self.loader.create_module(spec)  # type: ignore[attr-defined]

    def exec_module(self, module: types.ModuleType) -> None:
        self.loader.exec_module(module)  # type: ignore[attr-defined]
        module.cache[CELL] = self.entry
