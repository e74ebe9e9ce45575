"""Which tools each owner's code sees: the deployment's servers, plus an owner's own.

The code API of the deployment's servers is generated once into `<api>/servers`; an owner
with servers of their own gets `<api>/owners/<owner>/servers` (the deployment's tools and
theirs) and only that owner's boxes mount it. Listings, search and the bridge's tool check
all read the same table, so an owner's own server is invisible to everyone else.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sandbox.bridge import codegen
from sandbox.bridge.search import search
from sandbox.bridge.upstream import ToolInfo


class ToolSource(Protocol):
    """What the catalog needs from the upstream pool."""

    def tools(self, owner: str | None = None) -> list[ToolInfo]: ...

    def owners(self) -> list[str]: ...


class ToolCatalog:
    """Per-owner tool tables and code-API folders, made once from the pool's listings."""

    def __init__(self, source: ToolSource, api_dir: Path) -> None:
        self._tools: dict[str | None, dict[tuple[str, str], ToolInfo]] = {}
        self._dirs: dict[str | None, Path] = {}
        self._index: dict[str | None, list[dict[str, Any]]] = {}
        # Folders of owners no longer configured must not outlive their config.
        shutil.rmtree(api_dir / "owners", ignore_errors=True)
        self._build(None, source.tools(), api_dir / "servers")
        for owner in source.owners():
            self._build(owner, source.tools(owner), api_dir / "owners" / owner / "servers")

    def _build(self, owner: str | None, tools: list[ToolInfo], out: Path) -> None:
        codegen.generate(tools, out)
        self._tools[owner] = {(t.server, t.name): t for t in tools}
        self._dirs[owner] = out
        self._index[owner] = json.loads((out / "index.json").read_text())

    def _key(self, owner: str | None) -> str | None:
        return owner if owner in self._tools else None

    def servers_dir(self, owner: str | None = None) -> Path:
        """The `servers` package an owner's boxes mount at /servers."""
        return self._dirs[self._key(owner)]

    def tool(self, owner: str | None, server: str, tool: str) -> ToolInfo | None:
        """The tool if `owner`'s code may see it (None: the deployment's tools only)."""
        return self._tools[self._key(owner)].get((server, tool))

    def tools(self, owner: str | None = None) -> list[ToolInfo]:
        return list(self._tools[self._key(owner)].values())

    def search(
        self,
        owner: str | None,
        query: str,
        detail: str,
        limit: int,
        keep: Callable[[str, str], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Rank the tools `owner` sees; `keep(server, tool)` filters them first.

        Raises:
            ValueError: detail is not name, summary or schema.
        """
        index = self._index[self._key(owner)]
        if keep is not None:
            index = [t for t in index if keep(t["server"], t["name"])]
        return search(index, query, detail, limit)
