"""/docs in a real browser (headless Chromium, when installed: `apt-get install chromium`):
the page renders every operation and the browser reports no CSP violation."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from sandbox.keys import KeyStore
from tests.integration.test_http_api import Server
from tests.unit.conftest import MakeOrc

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")


@pytest.fixture
def url(make_orc: MakeOrc) -> Iterator[str]:
    orc = make_orc()
    with Server(orc, KeyStore(orc.settings.data_dir / "keys.json")) as server:
        yield server.url


def test_the_docs_page_renders_offline_without_a_csp_violation(url: str) -> None:
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--log-level=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            f"{url}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not [line for line in console if "Content Security Policy" in line], console
    assert 'data-path="/v1/sessions/{sid}/runs"' in done.stdout  # Swagger UI drew the API
    assert "authorize" in done.stdout  # and the bearer scheme's button
