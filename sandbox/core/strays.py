"""Boxes whose removal failed (the engine under load, a busy mount): kept in view and removed
again later by `Orchestrator.gc`, which `sandbox serve` runs every minute. Without this such a
box would stay until its deadline label expired, or until the controller restarted."""

from __future__ import annotations

import logging
import threading

from sandbox.backends.base import Backend, ContainerRef
from sandbox.exceptions import SandboxError

logger = logging.getLogger(__name__)


class Strays:
    """Container refs to remove again; safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: set[ContainerRef] = set()

    def add(self, ref: ContainerRef) -> None:
        with self._lock:
            self._refs.add(ref)

    def remove_all(self, backend: Backend) -> int:
        """Try each again; returns how many are gone now."""
        with self._lock:
            refs, self._refs = self._refs, set()
        gone = 0
        for ref in refs:
            try:
                backend.remove(ref)
                gone += 1
            except SandboxError as exc:
                logger.warning("container %s still not removed: %s", ref.id, exc)
                self.add(ref)
        return gone
