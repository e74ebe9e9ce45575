"""The embedded API's import path: `Orchestrator` and `Session` live in `sandbox.core`."""

from sandbox.core.orchestrator import Orchestrator, collect_garbage
from sandbox.core.session import Session
from sandbox.core.skills import SkillStore

__all__ = ["Orchestrator", "Session", "SkillStore", "collect_garbage"]
