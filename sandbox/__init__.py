"""Ephemeral, hardened sandboxes for code-executing AI agents: one fresh container per run."""

from sandbox.exceptions import (
    BackendError,
    BackendUnavailableError,
    ContainerStartError,
    ControllerBusyError,
    FileTypeError,
    ImageBuildError,
    InvalidInputError,
    NotFoundError,
    QuotaExceededError,
    SandboxError,
    SessionClosedError,
    UnsafePathError,
)
from sandbox.models import FileEntry, Limits, RunResult
from sandbox.orchestrator import Orchestrator, Session
from sandbox.settings import Settings

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ContainerStartError",
    "ControllerBusyError",
    "FileEntry",
    "FileTypeError",
    "ImageBuildError",
    "InvalidInputError",
    "Limits",
    "NotFoundError",
    "Orchestrator",
    "QuotaExceededError",
    "RunResult",
    "SandboxError",
    "Session",
    "SessionClosedError",
    "Settings",
    "UnsafePathError",
]
