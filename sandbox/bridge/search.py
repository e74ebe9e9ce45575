"""Tool search over the code API index. Stdlib only: this file is also copied into the
sandbox (as /servers/_search.py), so the host and the sandbox rank tools the same way."""

import re
from typing import Any

DETAILS = ("name", "summary", "schema")
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower().replace("_", " ")))


def search(
    index: list[dict[str, Any]], query: str, detail: str = "summary", limit: int = 20
) -> list[dict[str, Any]]:
    """Rank tools of an index (a list of tool dicts) against a free-text query.

    detail: "name" (server.tool), "summary" (plus the first line of the description),
    "schema" (plus the description and the input schema).
    """
    if detail not in DETAILS:
        raise ValueError(f"detail must be one of {DETAILS}")
    q = _words(query or "")
    scored: list[tuple[int, str, str, dict[str, Any]]] = []
    for tool in index:
        name_words = _words(tool["server"] + " " + tool["name"])
        desc_words = _words(tool.get("description", ""))
        score = 3 * len(q & name_words) + len(q & desc_words)
        if not q or score:
            scored.append((-score, tool["server"], tool["name"], tool))
    scored.sort(key=lambda s: s[:3])
    out = []
    for _, _, _, tool in scored[:limit]:
        item: dict[str, Any] = {
            "name": tool["server"] + "." + tool["name"],
            "import": tool["import"],
        }
        if detail in ("summary", "schema"):
            item["summary"] = (tool.get("description") or "").strip().split("\n")[0][:200]
        if detail == "schema":
            item["description"] = tool.get("description", "")
            item["input_schema"] = tool.get("input_schema", {})
        out.append(item)
    return out
