"""One `sandbox serve` process (local-process backend) for the real-client tests over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.local_serve import Served, serve_local


@pytest.fixture(scope="session")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_local(tmp_path_factory.mktemp("serve")) as served:
        yield served
