"""What the tools answer: one typed model per tool, and the plain text a model reads.

MCP clients disagree on which part of a tool result reaches the model: Claude Code and
Cursor pass on `structuredContent` when there is one (and drop the text), Claude Desktop,
claude.ai and many others pass on only `content`. The spec asks a tool that returns
structured content to repeat it as JSON text, which would put every output in a result
twice. So a result carries its text once: by default as plain text in `content` (no
`outputSchema`; every client shows it, and escaped JSON reads worse than the text), or,
with `output.mcp_structured`, as the typed model in `structuredContent` with a one-line
summary in `content` (for clients that read `structuredContent`). Images are image
content in either form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from mcp_types import CallToolResult, ContentBlock, TextContent
from pydantic import BaseModel, ConfigDict, Field

from sandbox.core.reading import FileRead, Page
from sandbox.models import RunResult


class RunOutput(BaseModel):
    """What a run of execute_code did."""

    exit_code: int = Field(description="The program's exit status: 0 is success, 137 killed.")
    outcome: str = Field(
        description="ok, nonzero_exit, timed_out, oom_killed, cancelled, or why the sandbox "
        "could not run the code (e.g. container_lost)"
    )
    duration_s: float = Field(description="Seconds the run took.")
    stdout: str = Field(
        description="Standard output (PII as tokens). Past the output budget only its start "
        "and end are here, with a marker that says what was left out and where the whole "
        "output is saved."
    )
    stderr: str = Field(description="Standard error, kept like stdout (tracebacks are here).")
    stdout_omitted: int = Field(0, description="Characters of stdout left out here.")
    stderr_omitted: int = Field(0, description="Characters of stderr left out here.")
    stdout_file: str | None = Field(
        None, description="Where the whole stdout is saved in the sandbox, when it is long."
    )
    stderr_file: str | None = Field(
        None, description="Where the whole stderr is saved in the sandbox, when it is long."
    )
    output_truncated: bool = Field(
        description="The sandbox dropped output past its per-stream cap (write big output to "
        "a file instead)."
    )
    warnings: list[str] = Field([], description="Static-analysis findings about the code.")


class Entry(BaseModel):
    path: str = Field(description="Path relative to the listed root.")
    kind: Literal["file", "dir", "symlink", "other"]
    size: int = Field(description="Bytes.")


class Listing(BaseModel):
    """One page of a listing."""

    entries: list[Entry]
    total: int = Field(description="Entries in the whole listing.")
    offset: int = Field(description="Index of the first entry of this page.")
    next_offset: int | None = Field(description="Pass as offset for the next page; null: done.")


class FilePage(BaseModel):
    """One page of a file."""

    path: str
    kind: Literal["text", "image", "base64"] = Field(
        description="text (PII as tokens), image (sent as image content), or base64."
    )
    size: int = Field(description="The file's size in bytes.")
    offset: int = Field(description="Byte offset this page starts at.")
    next_offset: int | None = Field(description="Pass as offset for the next page; null: done.")
    text: str = Field(description="The page's text or base64; empty for an image.")


class ToolMatch(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str = Field(description="server.tool")
    import_: str = Field(alias="import", description="The import line for execute_code.")
    summary: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None


class ToolMatches(BaseModel):
    """Tools usable from execute_code, best match first."""

    tools: list[ToolMatch]


class Saved(BaseModel):
    """A file written."""

    path: str = Field(description="Where it is, as code in the sandbox sees it.")
    bytes: int


def answer(
    structured: bool,
    view: BaseModel,
    text: str,
    summary: str,
    extra: Sequence[ContentBlock] = (),
) -> CallToolResult:
    """The tool result in the server's form (see the module docstring)."""
    if structured:
        return CallToolResult(
            content=[TextContent(text=summary), *extra],
            structured_content=view.model_dump(mode="json", by_alias=True),
        )
    return CallToolResult(content=[TextContent(text=text), *extra] if text else list(extra))


# -- views and their text ---------------------------------------------------------------


def run_output(r: RunResult) -> RunOutput:
    return RunOutput(
        exit_code=r.exit_code,
        outcome=r.outcome,
        duration_s=round(r.duration_s, 3),
        stdout=r.stdout,
        stderr=r.stderr,
        stdout_omitted=r.omitted.get("stdout", 0),
        stderr_omitted=r.omitted.get("stderr", 0),
        stdout_file=r.outputs.get("stdout"),
        stderr_file=r.outputs.get("stderr"),
        output_truncated=r.output_truncated,
        warnings=[f"line {f.line}: {f.message}" for f in r.findings],
    )


def run_status(v: RunOutput) -> str:
    """The run in one line: `exit code 0 in 0.31 s`, and what went wrong."""
    words = {
        "timed_out": "timed out (killed)",
        "oom_killed": "out of memory (killed)",
        "cancelled": "cancelled (killed)",
    }
    status = f"exit code {v.exit_code} in {v.duration_s:.2f} s"
    if v.outcome in words:
        status += f"; {words[v.outcome]}"
    elif v.outcome not in ("ok", "nonzero_exit"):
        status += f"; {v.outcome}"
    if v.output_truncated:
        status += "; output past the sandbox's cap was dropped"
    return status


def run_text(v: RunOutput) -> str:
    parts = [run_status(v)]
    parts += [f"warning: {w}" for w in v.warnings]
    for name, text in (("stdout", v.stdout), ("stderr", v.stderr)):
        if text:
            parts.append(f"--- {name} ---\n{text.rstrip(chr(10))}")
    if not (v.stdout or v.stderr):
        parts.append("(no output)")
    return "\n".join(parts)


def listing(page: Page) -> Listing:
    return Listing(
        entries=[Entry(path=e.path, kind=e.kind, size=e.size) for e in page.entries],
        total=page.total,
        offset=page.offset,
        next_offset=page.next_offset,
    )


def listing_text(v: Listing, call: str) -> str:
    if not v.total:
        return "(empty)"
    lines = [
        f"{e.path}/"
        if e.kind == "dir"
        else f"{e.path}  {e.size:,} B"
        if e.kind == "file"
        else f"{e.path}  ({e.kind})"
        for e in v.entries
    ]
    first = v.offset + 1 if v.entries else v.offset
    lines.append(f"[entries {first}-{v.offset + len(v.entries)} of {v.total:,}]")
    if v.next_offset is not None:
        lines[-1] = lines[-1][:-1] + f"; {call}(offset={v.next_offset}) lists the next ones]"
    return "\n".join(lines)


def file_page(f: FileRead) -> FilePage:
    return FilePage(
        path=f.path,
        kind=f.kind,
        size=f.size,
        offset=f.offset,
        next_offset=f.next_offset,
        text=f.text,
    )


def file_text(v: FilePage) -> str:
    if v.kind == "image":
        return f"{v.path}: a picture of {v.size:,} bytes"
    if v.next_offset is None and v.offset == 0:
        return v.text
    shown = f"bytes {v.offset:,}-{(v.next_offset or v.size):,} of {v.size:,} of {v.path}"
    more = (
        f"; read_file with offset={v.next_offset} continues"
        if v.next_offset is not None
        else " (the end)"
    )
    return f"{v.text}\n[... {shown}{more} ...]"
