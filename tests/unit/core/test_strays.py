"""Boxes no session owns (a start that failed, then a removal that failed too) do not stay:
the first failure is the one reported, and `gc` (which `sandbox serve` runs every minute)
removes the stray while never touching a live session's box."""

from __future__ import annotations

from pathlib import Path

from sandbox import Orchestrator
from sandbox.backends import LocalProcessBackend, LocalProcessBackendConfig
from sandbox.backends.base import LABEL_CONTROLLER, LABEL_MANAGED, ContainerRef
from sandbox.core.registry import SessionRegistry
from sandbox.exceptions import BackendError
from tests.unit.conftest import local_settings


class FailingEngine(LocalProcessBackend):
    """The first start fails, and so does removing that container, until `healed`."""

    def __init__(self) -> None:
        super().__init__(LocalProcessBackendConfig(unsafe_no_isolation=True))
        self.failed: ContainerRef | None = None
        self.healed = False

    def start(self, ref: ContainerRef) -> None:
        if self.failed is None:
            self.failed = ref
            raise BackendError("start container: the engine is overloaded")
        super().start(ref)

    def remove(self, ref: ContainerRef) -> None:
        if ref == self.failed and not self.healed:
            raise BackendError("remove container: device or resource busy")
        super().remove(ref)


def test_a_box_whose_start_and_removal_failed_is_removed_by_gc(tmp_path: Path) -> None:
    engine = FailingEngine()
    settings = local_settings(tmp_path)
    mine = {LABEL_MANAGED: "1", LABEL_CONTROLLER: settings.controller_id}
    with Orchestrator(settings, backend=engine) as orc, orc.session("alice") as s:
        # The warm box failed to start: the run gets a fresh one and is not lost.
        assert s.run("print(1)").stdout == "1\n"
        assert engine.failed is not None
        assert engine.failed in [c.ref for c in engine.list_managed(mine)]
        engine.healed = True
        assert orc.gc() >= 1
        left = [c.ref for c in engine.list_managed(mine)]
        assert engine.failed not in left
        assert left  # the session's next box, which gc left alone
        assert s.run("print(2)").stdout == "2\n"


def test_a_session_being_opened_counts_as_live() -> None:
    registry: SessionRegistry[object] = SessionRegistry(per_owner=2, total=4)
    registry.reserve("alice", "s1")
    assert registry.ids() == {"s1"}
    registry.cancel("s1")
    assert registry.ids() == set()
