"""Every error the sandbox raises, each with the stable code and HTTP status it answers with.

    SandboxError                               internal              500
    ├── InvalidInputError (ValueError)         invalid_input         400  bad ids, limits or code
    │   ├── UnsafePathError                    unsafe_path           400  '..', absolute, NUL, too long, too deep
    │   ├── PolicyViolationError               policy_violation      422  static analysis blocked the code; a command not allowed
    │   └── IdempotencyConflictError           idempotency_conflict  422  an Idempotency-Key reused for another request
    ├── IdempotencyGoneError (LookupError)     that Idempotency-Key's result was dropped (410)
    ├── NotFoundError (LookupError)            not_found             404  no such session, file, image or profile
    │   ├── SessionClosedError (RuntimeError)  not_found             404  the session or orchestrator is closed
    │   └── ProfileNotAllowedError             not_found             404  a profile the caller's key may not use
    ├── FileTypeError (ValueError)             not_a_regular_file    400  a link, FIFO, device or directory where a file was expected
    ├── QuotaExceededError (OSError)           quota_exceeded        413  a workspace or skills quota is full; a file is too large
    │   └── BodyTooLargeError                  body_too_large        413  a request body over the API's limit
    ├── RequestTimeoutError (TimeoutError)     body_timeout          408  a request body arrived too slowly
    ├── AuthenticationError (PermissionError)  unauthorized          401  no valid API key
    ├── RateLimitedError (RuntimeError)        rate_limited          429  slow down; `retry_after` says for how long, if known
    │   ├── QueueFullError                     queue_full            429  too many runs already waiting for a slot
    │   └── TooManySessionsError               too_many_sessions     429  the owner's or the global session cap is reached
    ├── BackendError (RuntimeError)            backend_error         502  the container engine failed
    │   ├── BackendUnavailableError (ConnectionError)  backend_unavailable  503  no engine answers
    │   │   └── ServiceStartingError           starting              503  the controller is still connecting to its engine
    │   └── ContainerStartError                backend_error         502  a container did not come up in time
    ├── AuditUnavailableError (OSError)        audit_unavailable     503  the audit record could not be written, so the action did not go ahead
    ├── ControllerBusyError (RuntimeError)     internal              500  another controller holds the data directory
    ├── ImageBuildError (RuntimeError)         internal              500  the sandbox image could not be built
    └── ApiError (RuntimeError)                internal              500  any other error status from the API (client side)

Defined elsewhere, beside the code that raises them, with their parent's code and status:
    UnsafeBackendError (SandboxError, PermissionError)  sandbox.backends.local  no unsafe_no_isolation=True
    AuditError (AuditUnavailableError)                  sandbox.audit           an audit record was not written
    SecretError (SandboxError, ValueError)              sandbox.secrets         a secret does not decrypt
    VaultError (SandboxError, ValueError)               sandbox.pii.vault       a vault record does not decrypt
    ApprovalLimitError (RateLimitedError)               sandbox.bridge.approvals  too many approvals pending
        (code too_many_approvals, 429; it stays in the bridge: the box gets rate_limited)
    RunCancelledError (SandboxError, RuntimeError)      sandbox.core.cancel     a run cancelled before it started
        (code cancelled, 499: its caller is gone; a run cancelled later is a RunResult)

`code` and `http_status` are class attributes: a surface answers with `describe(exc)` and a
client raises `error_for(code)`, so neither keeps a table of its own. A subclass that declares
no code of its own answers with its parent's (ContainerStartError as backend_error,
SessionClosedError and ProfileNotAllowedError as not_found: a closed session or a refused
profile looks like a missing one). Errors answering `internal` explain nothing to a caller:
their messages may hold host paths, so a surface sends a generic message instead, and the
client raises ApiError for them.

Errors raised by `sandbox.client` carry the server's `code` and `status` on the instance (an
old or newer server may send a code this version has no class for: ApiError) and use the same
classes the embedded Orchestrator raises, so `except NotFoundError` reads the same for both.

Sandbox code that times out, runs out of memory or floods its output is not an error of
the controller: those outcomes are reported on the RunResult (`timed_out`, `oom_killed`,
`output_truncated`).
"""

from __future__ import annotations

from typing import ClassVar


class SandboxError(Exception):
    """Root of every error this package raises."""

    code: str = "internal"
    """The stable error code this class answers with. A plain attribute rather than a ClassVar
    because the client sets the code the server actually sent on the instance."""
    http_status: ClassVar[int] = 500
    status: int | None = None
    """The HTTP status the server answered, on errors raised by `sandbox.client`; else None."""


class InvalidInputError(SandboxError, ValueError):
    """An argument failed validation."""

    code, http_status = "invalid_input", 400


class UnsafePathError(InvalidInputError):
    """A workspace or skills path tried to leave its folder or is malformed."""

    code = "unsafe_path"


class PolicyViolationError(InvalidInputError):
    """The session's profile refuses this code or command; `findings` says why."""

    code, http_status = "policy_violation", 422

    def __init__(self, message: str, findings: list[object] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


class IdempotencyConflictError(InvalidInputError):
    """An Idempotency-Key was used again with a different request."""

    code, http_status = "idempotency_conflict", 422


class IdempotencyGoneError(SandboxError, LookupError):
    """The result of an earlier request with this Idempotency-Key is no longer held."""

    code, http_status = "idempotency_result_gone", 410


class NotFoundError(SandboxError, LookupError):
    """The named session, file, image or profile does not exist."""

    code, http_status = "not_found", 404


class SessionClosedError(NotFoundError, RuntimeError):
    """The session or orchestrator was already closed."""


class ProfileNotAllowedError(NotFoundError):
    """The caller's key may not use this profile; answered like an unknown one, so a key
    cannot probe which profiles exist."""


class FileTypeError(SandboxError, ValueError):
    """A path names a link, FIFO, device or directory where a regular file was expected."""

    code, http_status = "not_a_regular_file", 400


class QuotaExceededError(SandboxError, OSError):
    """A size quota was hit."""

    code, http_status = "quota_exceeded", 413


class BodyTooLargeError(QuotaExceededError):
    """A request body is larger than the API accepts."""

    code = "body_too_large"


class RequestTimeoutError(SandboxError, TimeoutError):
    """A request body arrived too slowly."""

    code, http_status = "body_timeout", 408


class AuthenticationError(SandboxError, PermissionError):
    """The API refused the key."""

    code, http_status = "unauthorized", 401


class RateLimitedError(SandboxError, RuntimeError):
    """The caller should slow down; `retry_after` says for how long in seconds, if known."""

    code, http_status = "rate_limited", 429

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueFullError(RateLimitedError):
    """Too many runs are already waiting for a slot."""

    code = "queue_full"


class TooManySessionsError(RateLimitedError):
    """The owner's or the global cap on open sessions is reached."""

    code = "too_many_sessions"


class BackendError(SandboxError, RuntimeError):
    """The container engine reported a failure."""

    code, http_status = "backend_error", 502


class BackendUnavailableError(BackendError, ConnectionError):
    """No container engine answers."""

    code, http_status = "backend_unavailable", 503


class ServiceStartingError(BackendUnavailableError):
    """The controller is still connecting to its container engine; try again shortly."""

    code = "starting"


class ContainerStartError(BackendError):
    """A sandbox container did not come up and dial its socket in time."""


class AuditUnavailableError(SandboxError, OSError):
    """An audit record could not be written, so the action it records did not go ahead."""

    code, http_status = "audit_unavailable", 503


class ControllerBusyError(SandboxError, RuntimeError):
    """Another live controller holds the data directory."""


class ImageBuildError(SandboxError, RuntimeError):
    """The sandbox image could not be built."""


class ApiError(SandboxError, RuntimeError):
    """An error status from the API with no more specific class."""


ALIASES: dict[str, type[SandboxError]] = {
    # FastAPI's own refusals of a request body, which no SandboxError raises.
    "invalid_request": InvalidInputError,
    "malformed_json": InvalidInputError,
}
"""Codes a server sends that no class declares, and the class a client raises for them."""


def _subclasses(cls: type[SandboxError]) -> list[type[SandboxError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _declared() -> dict[str, type[SandboxError]]:
    """Each code a class declares, to the most general class declaring it."""
    by_code: dict[str, type[SandboxError]] = {}
    for cls in _subclasses(SandboxError):
        if "code" not in vars(cls):
            continue
        known = by_code.get(cls.code)
        # Unrelated classes sharing a code would be a bug; tests/unit/test_exceptions.py
        # refuses it, so here the first one found simply wins.
        if known is None or issubclass(known, cls):
            by_code[cls.code] = cls
    return by_code


def error_for(code: str) -> type[SandboxError]:
    """The class a client raises for an error code: the most general class that declares it,
    else the class `ALIASES` names, else ApiError (`internal` included: it explains nothing).

    Looked up on each call, so classes defined in modules imported later count too.
    """
    if code == SandboxError.code:
        return ApiError
    return _declared().get(code) or ALIASES.get(code, ApiError)


def describe(exc: SandboxError) -> tuple[int, str]:
    """The HTTP status and error code a surface answers `exc` with.

    For `internal` (status 500) a surface should log the error and send a generic message.
    """
    return type(exc).http_status, exc.code
