"""Every error the sandbox raises.

    SandboxError
    ├── InvalidInputError (ValueError)         bad ids, limits or code
    │   ├── UnsafePathError                    '..', absolute, NUL, too long, too deep
    │   └── PolicyViolationError               static analysis blocked the code; a command not allowed
    ├── NotFoundError (LookupError)            no such session, file or image
    ├── FileTypeError (ValueError)             a link, FIFO, device or directory where a file was expected
    ├── QuotaExceededError (OSError)           a workspace or skills quota is full; a file is too large
    ├── SessionClosedError (RuntimeError)      the session or orchestrator is closed
    ├── ControllerBusyError (RuntimeError)     another controller holds the data directory
    ├── BackendError (RuntimeError)            the container engine failed
    │   ├── BackendUnavailableError (ConnectionError)   no engine answers
    │   └── ContainerStartError                a container did not come up in time
    ├── ImageBuildError (RuntimeError)         the sandbox image could not be built
    ├── AuthenticationError (PermissionError)  the API refused the key (client side)
    ├── RateLimitedError                       the API asked to slow down (client side)
    └── ApiError                               any other error status from the API (client side)

Errors raised by `sandbox.client` carry the server's `code`, `status` and message; a server
error code maps to the same class the embedded Orchestrator raises (`not_found` →
NotFoundError, `unsafe_path` → UnsafePathError, ...).

Sandbox code that times out, runs out of memory or floods its output is not an error of
the controller: those outcomes are reported on the RunResult (`timed_out`, `oom_killed`,
`output_truncated`).
"""

from __future__ import annotations


class SandboxError(Exception):
    """Root of every error this package raises."""


class InvalidInputError(SandboxError, ValueError):
    """An argument failed validation."""


class UnsafePathError(InvalidInputError):
    """A workspace or skills path tried to leave its folder or is malformed."""


class PolicyViolationError(InvalidInputError):
    """The session's profile refuses this code or command; `findings` says why."""

    def __init__(self, message: str, findings: list[object] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


class NotFoundError(SandboxError, LookupError):
    """The named session, file or image does not exist."""


class FileTypeError(SandboxError, ValueError):
    """A path names a link, FIFO, device or directory where a regular file was expected."""


class QuotaExceededError(SandboxError, OSError):
    """A size quota was hit."""


class SessionClosedError(SandboxError, RuntimeError):
    """The session or orchestrator was already closed."""


class ControllerBusyError(SandboxError, RuntimeError):
    """Another live controller holds the data directory."""


class BackendError(SandboxError, RuntimeError):
    """The container engine reported a failure."""


class BackendUnavailableError(BackendError, ConnectionError):
    """No container engine answers."""


class ContainerStartError(BackendError):
    """A sandbox container did not come up and dial its socket in time."""


class ImageBuildError(SandboxError, RuntimeError):
    """The sandbox image could not be built."""


class AuthenticationError(SandboxError, PermissionError):
    """The API refused the key."""


class RateLimitedError(SandboxError):
    """The API asked the client to slow down; `retry_after` says for how long, if it said."""

    retry_after: float | None = None


class ApiError(SandboxError):
    """An error status from the API with no more specific class."""
