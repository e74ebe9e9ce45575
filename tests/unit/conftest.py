"""Fast fixtures: a real Orchestrator on the local-process backend (no Docker, NO isolation).

These test the layers above the backend (core, HTTP API, MCP server, client) quickly; the
Docker suites under tests/integration and tests/security test the box itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import Orchestrator, Settings

MakeOrc = Callable[..., Orchestrator]


def local_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "controller_id": "u" + secrets.token_hex(6),
        "image": "local",
        "workspace_backing": "directory",
        "backend": {"type": "local", "unsafe_no_isolation": True},
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def make_orc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeOrc]:
    made: list[Orchestrator] = []

    def make(**overrides: object) -> Orchestrator:
        orc = Orchestrator(local_settings(tmp_path_factory.mktemp("d"), **overrides))
        made.append(orc)
        return orc

    yield make
    for orc in made:
        orc.close()


@pytest.fixture
def local_orc(make_orc: MakeOrc) -> Orchestrator:
    return make_orc()
