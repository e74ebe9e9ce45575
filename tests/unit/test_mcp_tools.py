"""The MCP tools as a model meets them, through the SDK's client in process (local backend):
descriptions that say what a model needs, answers within the output budget and never twice,
files and listings a page at a time, and output sent while a run goes on."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from mcp import Client as McpClient
from mcp_types import ImageContent, TextContent

from sandbox import Orchestrator
from sandbox.mcp import build_mcp_server
from tests.unit.conftest import MakeOrc

MODES = ["legacy", "auto"]  # auto speaks 2026-07-28 to this server
MARKER = re.compile(
    r"\n\[\.\.\. ([\d,]+) characters \(([\d,]+) lines\) of (\w+) left out; (.*?) \.\.\.\]\n"
)


def with_client(
    orc: Orchestrator, work: Callable[[Any], Coroutine[Any, Any, Any]], **client: Any
) -> Any:
    server = build_mcp_server(lambda: orc, local=orc.admission.local("desk"))

    async def main() -> Any:
        try:
            async with McpClient(server, **client) as c:
                return await work(c)
        finally:
            server.sandbox_sessions.close_all()  # type: ignore[attr-defined]

    return asyncio.run(main())


def only_text(result: Any) -> str:
    assert not result.is_error, result.content
    assert [type(c) for c in result.content] == [TextContent]
    return str(result.content[0].text)


def test_every_tool_has_a_title_annotations_and_described_parameters(
    local_orc: Orchestrator,
) -> None:
    async def work(c: Any) -> Any:
        return (await c.list_tools()).tools

    for tool in with_client(local_orc, work):
        assert tool.title and tool.description, tool.name
        hints = tool.annotations
        assert hints.read_only_hint is not None and hints.open_world_hint is not None
        if not hints.read_only_hint:
            assert hints.destructive_hint is not None and hints.idempotent_hint is not None
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name}"
        assert tool.output_schema is None  # plain text, once (sandbox/mcp/views.py)


def test_descriptions_say_what_persists_the_limits_the_network_and_what_tokens_are(
    local_orc: Orchestrator,
) -> None:
    async def work(c: Any) -> Any:
        return c.instructions, {t.name: t for t in (await c.list_tools()).tools}

    instructions, tools = with_client(local_orc, work)
    run = tools["execute_code"]
    assert "Variables, imports, processes and /tmp do not persist" in instructions
    assert "[EMAIL_1]" in instructions and "pass it unchanged to tools" in instructions
    assert "no network at all" in instructions and "standard library" in instructions
    assert "timeout up to 30 s" in run.description and "20,000 characters" in run.description
    assert "last expression is shown" in run.description
    assert "at most 30" in run.input_schema["properties"]["timeout"]["description"]
    assert run.annotations.read_only_hint is False and run.annotations.destructive_hint
    assert tools["read_file"].annotations.read_only_hint is True


def test_the_descriptions_follow_the_deployment(make_orc: MakeOrc) -> None:
    orc = make_orc(
        limits={"timeout_s": 120},
        output={"budget": 8000, "image_notes": "Python 3.11 with numpy and pandas"},
    )

    async def work(c: Any) -> Any:
        return {t.name: t for t in (await c.list_tools()).tools}["execute_code"].description

    described = with_client(orc, work)
    assert "timeout up to 120 s" in described and "about 8,000 characters" in described
    assert "numpy and pandas" in described


@pytest.mark.parametrize("mode", MODES)
def test_a_flood_comes_back_once_within_the_budget_saying_where_the_rest_is(
    local_orc: Orchestrator, mode: str
) -> None:
    code = (
        "import sys\nfor i in range(80_000):\n    print('row', i)\nprint('boom', file=sys.stderr)"
    )

    async def work(c: Any) -> Any:
        ran = await c.call_tool("execute_code", {"code": code})
        saved = MARKER.search(only_text(ran)).group(4).split(" is in ")[1].split(" ")[0]
        page = await c.call_tool("read_file", {"path": saved.removeprefix("/workspace/")})
        return ran, page

    ran, page = with_client(local_orc, work, mode=mode)
    shown = only_text(ran)
    assert ran.structured_content is None
    assert len(shown) < 20_000 + 400
    assert shown.startswith("exit code 0 in ")
    assert "--- stdout ---\nrow 0\nrow 1\n" in shown and "row 79999\n--- stderr ---\nboom" in shown
    left_out, _, stream, where = MARKER.search(shown).groups()
    assert stream == "stdout" and int(left_out.replace(",", "")) > 700_000
    assert "output past the sandbox's cap" not in shown
    assert re.fullmatch(r"the whole stdout is in /workspace/\.outputs/\w+/stdout .*", where)
    first = only_text(page)
    assert first.startswith("row 0\n") and "read_file with offset=" in first[-200:]


def test_in_structured_mode_the_streams_are_typed_and_the_text_is_one_line(
    make_orc: MakeOrc,
) -> None:
    orc = make_orc(output={"mcp_structured": True})

    async def work(c: Any) -> Any:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        ran = await c.call_tool("execute_code", {"code": "print('z' * 100_000)"})
        listed = await c.call_tool("list_files", {"path": ".outputs"})
        return tools, ran, listed

    tools, ran, listed = with_client(orc, work)
    schema = tools["execute_code"].output_schema
    assert schema["properties"]["stdout"]["type"] == "string"
    assert {"exit_code", "stdout", "stderr", "stdout_file"} <= set(schema["properties"])
    assert tools["list_files"].output_schema["properties"]["total"]["type"] == "integer"
    out = ran.structured_content
    assert out["exit_code"] == 0 and out["outcome"] == "ok"
    assert 18_000 < len(out["stdout"]) < 20_400 and out["stdout_omitted"] > 80_000
    assert out["stdout_file"].startswith("/workspace/.outputs/")
    assert [c.text for c in ran.content] == [f"exit code 0 in {out['duration_s']:.2f} s"]
    assert listed.structured_content["total"] == 2  # the run's folder and its stdout


def test_a_binary_file_is_refused_unless_asked_for_as_base64(local_orc: Orchestrator) -> None:
    code = "open('blob.bin', 'wb').write(bytes(range(256)) * 4)"

    async def work(c: Any) -> Any:
        await c.call_tool("execute_code", {"code": code})
        refused = await c.call_tool("read_file", {"path": "blob.bin"})
        as_b64 = await c.call_tool("read_file", {"path": "blob.bin", "encoding": "base64"})
        return refused, as_b64

    refused, as_b64 = with_client(local_orc, work)
    assert refused.is_error
    message = refused.content[0].text
    assert "not_a_regular_file: blob.bin is binary (1,024 bytes)" in message
    assert "encoding='base64'" in message and "\ufffd" not in message
    assert base64.b64decode(only_text(as_b64)) == bytes(range(256)) * 4


def test_base64_of_a_file_with_personal_data_is_refused(local_orc: Orchestrator) -> None:
    code = "open('db.bin', 'wb').write(b'\\x00\\x01 alice.smith@example.com \\xff')"

    async def work(c: Any) -> Any:
        await c.call_tool("execute_code", {"code": code})
        return await c.call_tool("read_file", {"path": "db.bin", "encoding": "base64"})

    refused = with_client(local_orc, work)
    assert refused.is_error and "holds personal data" in refused.content[0].text


def test_a_picture_comes_back_as_image_content(local_orc: Orchestrator) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    code = f"open('chart.png', 'wb').write({png!r})"

    async def work(c: Any) -> Any:
        await c.call_tool("execute_code", {"code": code})
        return await c.call_tool("read_file", {"path": "chart.png"})

    shown = with_client(local_orc, work)
    assert not shown.is_error
    text, image = shown.content
    assert text.text == "chart.png: a picture of 108 bytes"
    assert isinstance(image, ImageContent) and image.mime_type == "image/png"
    assert base64.b64decode(image.data) == png


def test_a_long_text_is_read_a_page_at_a_time_and_no_page_cuts_a_value(
    local_orc: Orchestrator,
) -> None:
    rows = "".join(f"{i:06d},customer{i}@example.com\n" for i in range(3000))

    async def work(c: Any) -> list[str]:
        await c.call_tool("write_file", {"path": "big.csv", "content": rows})
        pages, offset = [], 0
        while offset is not None:
            page = only_text(await c.call_tool("read_file", {"path": "big.csv", "offset": offset}))
            pages.append(page)
            found = re.search(r"read_file with offset=(\d+) continues", page)
            offset = int(found.group(1)) if found else None
        return pages

    pages = with_client(local_orc, work)
    assert len(pages) > 3  # 99 KB, read about 20 KB at a time
    body = "".join(re.sub(r"\n\[\.\.\. bytes .*\]$", "", p) for p in pages)
    assert "@example.com" not in body and "example" not in body
    assert [line.split(",")[0] for line in body.splitlines()] == [f"{i:06d}" for i in range(3000)]
    assert all(re.fullmatch(r"\d{6},\[EMAIL_\d+\]", line) for line in body.splitlines())
    assert pages[-1].endswith("(the end) ...]")


def test_listings_come_in_pages_with_a_total(local_orc: Orchestrator) -> None:
    code = "import os\nos.mkdir('d')\nfor i in range(250):\n    open(f'd/f{i:03d}', 'w').close()"

    async def work(c: Any) -> list[str]:
        await c.call_tool("execute_code", {"code": code})
        first = only_text(await c.call_tool("list_files", {}))
        second = only_text(await c.call_tool("list_files", {"offset": 200}))
        small = only_text(await c.call_tool("list_files", {"path": "d", "limit": 2}))
        return [first, second, small]

    first, second, small = with_client(local_orc, work)
    assert first.splitlines()[0] == "d/" and len(first.splitlines()) == 201
    assert first.endswith("[entries 1-200 of 251; list_files(offset=200) lists the next ones]")
    assert second.splitlines()[0] == "d/f199  0 B" and second.endswith("[entries 201-251 of 251]")
    assert (
        small
        == "d/f000  0 B\nd/f001  0 B\n[entries 1-2 of 250; list_files(offset=2) lists the next ones]"
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_long_run_sends_its_output_and_progress_while_it_runs(
    local_orc: Orchestrator, mode: str
) -> None:
    # The run waits for the test to have seen its first line: no timing assumption.
    code = (
        "import os, time\n"
        "print('first line', flush=True)\n"
        "deadline = time.monotonic() + 20\n"
        "while not os.path.exists('go') and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)\n"
        "print('seen' if os.path.exists('go') else 'never seen')"
    )
    logged: list[tuple[str, Any]] = []
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_log(params: Any) -> None:
        logged.append((params.logger, params.data))
        if "first line" in str(params.data):
            local_orc.sessions()[0].upload("go", b"")

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def work(c: Any) -> Any:
        return await c.call_tool("execute_code", {"code": code}, progress_callback=on_progress)

    ran = with_client(local_orc, work, mode=mode, logging_callback=on_log, log_level="info")
    assert only_text(ran).endswith("--- stdout ---\nfirst line\nseen")
    assert logged[0] == ("stdout", "first line\n")
    assert progress and progress[0][1] == 30.0 and "last output: first line" in progress[0][2]
    assert [p[0] for p in progress] == sorted({p[0] for p in progress})


def test_the_server_declares_the_logging_it_sends(local_orc: Orchestrator) -> None:
    async def work(c: Any) -> Any:
        return c.server_capabilities

    assert with_client(local_orc, work, mode="legacy").logging is not None


def test_a_path_named_by_its_tokens_is_read_and_an_error_about_it_keeps_them(
    local_orc: Orchestrator,
) -> None:
    code = "open('maria.lopez@example.com.txt', 'w').write('hello')"

    async def work(c: Any) -> list[Any]:
        await c.call_tool("execute_code", {"code": code})
        listed = only_text(await c.call_tool("list_files", {}))
        name = listed.split("  ")[0]
        found = await c.call_tool("read_file", {"path": name})
        missing = await c.call_tool("read_file", {"path": name + ".old"})
        return [name, found, missing]

    name, found, missing = with_client(local_orc, work)
    assert re.fullmatch(r"\[EMAIL_\d+\]", name)  # the whole name reads as an address
    assert only_text(found) == "hello"
    assert missing.is_error and "not_found" in missing.content[0].text
    assert "maria" not in missing.content[0].text
