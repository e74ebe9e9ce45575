"""The error tree: one code and one HTTP status per class, and the way back from a code."""

from __future__ import annotations

import builtins

import pytest

# Modules outside sandbox.exceptions that define SandboxError subclasses, so the walk sees them.
import sandbox.audit
import sandbox.pii.vault
import sandbox.secrets
from sandbox.exceptions import (
    ALIASES,
    ApiError,
    AuditUnavailableError,
    BodyTooLargeError,
    IdempotencyConflictError,
    InvalidInputError,
    NotFoundError,
    PolicyViolationError,
    ProfileNotAllowedError,
    QueueFullError,
    QuotaExceededError,
    RateLimitedError,
    RequestTimeoutError,
    SandboxError,
    ServiceStartingError,
    SessionClosedError,
    TooManySessionsError,
    describe,
    error_for,
)


def every_error() -> list[type[SandboxError]]:
    found, todo = [], [SandboxError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


ERRORS = every_error()
ids = [f"{cls.__module__}.{cls.__qualname__}" for cls in ERRORS]
BUILTIN_ERRORS = tuple(
    v for v in vars(builtins).values() if isinstance(v, type) and issubclass(v, Exception)
)


@pytest.mark.parametrize("cls", ERRORS, ids=ids)
def test_every_error_also_subclasses_the_builtin_it_means(cls: type[SandboxError]) -> None:
    meant = [b for b in cls.__mro__ if b in BUILTIN_ERRORS and b not in (Exception, BaseException)]
    assert meant, f"{cls.__name__} subclasses no builtin error but Exception"
    assert cls.__name__.endswith("Error")


@pytest.mark.parametrize("cls", ERRORS, ids=ids)
def test_every_error_has_a_code_and_an_error_status(cls: type[SandboxError]) -> None:
    assert isinstance(cls.code, str) and cls.code.isidentifier() and cls.code.islower()
    assert 400 <= cls.http_status <= 599


@pytest.mark.parametrize("cls", ERRORS, ids=ids)
def test_every_error_can_be_made_from_a_message_alone(cls: type[SandboxError]) -> None:
    # The client builds any class `error_for` names from the server's message.
    exc = cls("what went wrong")
    assert str(exc) == "what went wrong" and describe(exc) == (cls.http_status, cls.code)


@pytest.mark.parametrize("cls", ERRORS, ids=ids)
def test_the_class_a_code_maps_back_to_catches_the_error(cls: type[SandboxError]) -> None:
    exc = cls("x")
    if cls.code == SandboxError.code:
        # `internal` tells a caller nothing; the client raises ApiError for it.
        assert error_for(cls.code) is ApiError
    else:
        assert isinstance(exc, error_for(cls.code))


def test_no_two_unrelated_classes_declare_the_same_code() -> None:
    declared: dict[str, list[type[SandboxError]]] = {}
    for cls in [SandboxError, *ERRORS]:
        if "code" in vars(cls):
            declared.setdefault(cls.code, []).append(cls)
    for code, classes in declared.items():
        top = classes[0]
        assert all(issubclass(c, top) for c in classes), f"{code}: {classes}"


def test_codes_shared_through_inheritance_are_the_documented_ones() -> None:
    shared = {
        cls.__name__: cls.code
        for cls in ERRORS
        if "code" not in vars(cls) and cls.code != SandboxError.code
    }
    assert shared == {
        "SessionClosedError": "not_found",  # a closed session looks like a missing one
        "ProfileNotAllowedError": "not_found",  # a key cannot probe which profiles exist
        "ContainerStartError": "backend_error",
        "AuditError": "audit_unavailable",  # sandbox.audit's own name for it
    }


def test_aliases_name_codes_no_class_declares() -> None:
    declared = {cls.code for cls in ERRORS if "code" in vars(cls)}
    assert not declared & ALIASES.keys()
    assert error_for("invalid_request") is InvalidInputError
    assert error_for("malformed_json") is InvalidInputError


def test_an_unknown_code_maps_to_api_error() -> None:
    assert error_for("from_a_newer_server") is ApiError
    assert error_for("") is ApiError


@pytest.mark.parametrize(
    ("cls", "status", "code", "parents"),
    [
        (InvalidInputError, 400, "invalid_input", (ValueError,)),
        (PolicyViolationError, 422, "policy_violation", (InvalidInputError,)),
        (NotFoundError, 404, "not_found", (LookupError,)),
        (SessionClosedError, 404, "not_found", (NotFoundError, RuntimeError)),
        (ProfileNotAllowedError, 404, "not_found", (NotFoundError,)),
        (IdempotencyConflictError, 422, "idempotency_conflict", (InvalidInputError,)),
        (BodyTooLargeError, 413, "body_too_large", (QuotaExceededError,)),
        (RequestTimeoutError, 408, "body_timeout", (TimeoutError,)),
        (QueueFullError, 429, "queue_full", (RateLimitedError,)),
        (TooManySessionsError, 429, "too_many_sessions", (RateLimitedError,)),
        (ServiceStartingError, 503, "starting", (ConnectionError,)),
        (AuditUnavailableError, 503, "audit_unavailable", (OSError,)),
    ],
)
def test_the_admission_errors_answer_as_the_api_always_has(
    cls: type[SandboxError], status: int, code: str, parents: tuple[type[Exception], ...]
) -> None:
    assert describe(cls("x")) == (status, code)
    assert issubclass(cls, parents)


def test_a_rate_limit_says_when_to_come_back() -> None:
    assert QueueFullError("busy", retry_after=1.0).retry_after == 1.0
    assert TooManySessionsError("full").retry_after is None


def test_an_audit_failure_answers_503_audit_unavailable() -> None:
    assert describe(sandbox.audit.AuditError("disk full")) == (503, "audit_unavailable")
