"""Output for a model with real containers: a 3 MB flood through MCP comes back within the
budget with its whole saved in the workspace; a chart drawn in the box comes back as an
image; the runtime in the image shows a cell's last value and quotes failing lines."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Callable, Coroutine
from typing import Any

from mcp import Client as McpClient
from mcp_types import ImageContent

from sandbox import Orchestrator
from sandbox.core.session import Session
from sandbox.mcp import build_mcp_server

# A 40x30 PNG drawn with the standard library only (zlib and struct), as a chart would be.
PNG = """
import struct, zlib
w, h = 40, 30
rows = b''.join(b'\\x00' + bytes(v for x in range(w) for v in (x * 6, y * 8, 128)) for y in range(h))
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
png += chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b'')
open('chart.png', 'wb').write(png)
len(png)
"""


def with_client(orc: Orchestrator, work: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    server = build_mcp_server(lambda: orc, local=orc.admission.local("desk"))

    async def main() -> Any:
        try:
            async with McpClient(server) as c:
                return await work(c)
        finally:
            server.sandbox_sessions.close_all()  # type: ignore[attr-defined]

    return asyncio.run(main())


def test_a_3_mb_flood_reaches_the_model_within_its_budget_and_whole_in_the_workspace(
    orc: Orchestrator,
) -> None:
    async def work(c: Any) -> Any:
        ran = await c.call_tool("execute_code", {"code": "print('z' * 3_000_000)"})
        text = ran.content[0].text
        saved = re.search(r"the whole stdout is in /workspace/(\S+)", text).group(1)
        size = await c.call_tool("execute_code", {"code": f"import os\nos.path.getsize({saved!r})"})
        page = await c.call_tool("read_file", {"path": saved, "offset": 1_000_000})
        return ran, size, page

    ran, size, page = with_client(orc, work)
    assert [c.type for c in ran.content] == ["text"] and ran.structured_content is None
    text = ran.content[0].text
    assert len(text) < 20_500  # was 2 MB: 1 MiB in content and again in structuredContent
    assert text.startswith("exit code 0 in ") and "output past the sandbox's cap" in text
    assert re.search(r"\[\.\.\. [\d,]+ characters \(0 lines\) of stdout left out;", text)
    cap = orc.settings.limits.output_bytes
    assert size.content[0].text.endswith(f"--- stdout ---\n{cap}")
    assert page.content[0].text.startswith("z" * 1000)
    assert f"of {cap:,} of " in page.content[0].text  # the page says where it is in the file


def test_a_chart_drawn_in_the_box_comes_back_as_an_image(orc: Orchestrator) -> None:
    async def work(c: Any) -> Any:
        drawn = await c.call_tool("execute_code", {"code": PNG})
        shown = await c.call_tool("read_file", {"path": "chart.png"})
        raw = await c.call_tool("read_file", {"path": "chart.png", "encoding": "base64"})
        return drawn, shown, raw

    drawn, shown, raw = with_client(orc, work)
    size = int(drawn.content[0].text.rsplit("\n", 1)[1])
    text, image = shown.content
    assert text.text == f"chart.png: a picture of {size:,} bytes"
    assert isinstance(image, ImageContent) and image.mime_type == "image/png"
    png = base64.b64decode(image.data)
    assert png.startswith(b"\x89PNG") and len(png) == size
    assert base64.b64decode(raw.content[0].text) == png


def test_the_runtime_in_the_image_shows_the_last_value_and_quotes_failing_lines(
    session: Session,
) -> None:
    shown = session.run("xs = [3, 1, 2]\nsorted(xs)")
    assert (shown.exit_code, shown.stdout) == (0, "[1, 2, 3]\n")
    assert session.run("x = 1\nx;").stdout == ""
    failed = session.run("def f(d):\n    return d['k']\n\nf({})")
    assert failed.exit_code == 1
    assert 'File "<sandbox>", line 4, in <module>\n    f({})\n' in failed.stderr
    assert "    return d['k']\n" in failed.stderr and "sbxrt" not in failed.stderr
