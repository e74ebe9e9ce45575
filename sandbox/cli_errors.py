"""How the CLI reports a failure: one line on stderr that says what went wrong and what to do,
and a non-zero exit code (2 for a mistake it can explain, 1 for anything else). The traceback
is shown only with `sandbox --debug ...` (or SANDBOX_DEBUG=1).

`SandboxGroup` is the Typer group class of the `sandbox` command: it catches what a command
raises, so every command (and subcommand group) reports alike without a try block of its own.
"""

from __future__ import annotations

import os
import re
import typing
from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from typer.core import TyperGroup
from typer.exceptions import TyperException

from sandbox.exceptions import (
    AuthenticationError,
    BackendUnavailableError,
    ControllerBusyError,
    SandboxError,
    ServiceStartingError,
)
from sandbox.settings import Settings

DEBUG = "sandbox.debug"
"""Where the global --debug flag is kept, in the click context's `meta` (shared by subcommands)."""
DEFAULT_ENGINE = "unix:///var/run/docker.sock"


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: <message>` on stderr; raise the returned Exit to end the command."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


class SandboxGroup(TyperGroup):
    """The `sandbox` command group: errors from any command become one line (see `explain`)."""

    def invoke(self, ctx: Any) -> Any:  # Any: typer's Context type lives in a private module
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # typer's own: exit codes, Ctrl-C, usage errors (already explained)
        except Exception as exc:  # the CLI's top-level handler: report, never a traceback
            if ctx.meta.get(DEBUG):
                raise
            raise fail(*explain(exc)) from None


def explain(exc: BaseException) -> tuple[str, int]:
    """What to tell a person about `exc`, and the exit code: 2 when it is a mistake with a
    known fix, 1 when it is unexpected."""
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        return bad_setting(exc), 2
    if isinstance(exc, ControllerBusyError):
        return (
            f"{exc}: a running `sandbox serve` or `sandbox mcp` holds it. Stop that one, or give "
            "this command a data dir of its own (SANDBOX_DATA_DIR=... and SANDBOX_CONTROLLER_ID=...)",
            2,
        )
    if isinstance(exc, BackendUnavailableError) and not isinstance(exc, ServiceStartingError):
        if _from_client(exc):
            return f"{exc}; is `sandbox serve` running there? (--url or SANDBOX_URL)", 2
        return engine_unreachable(exc), 2
    if isinstance(exc, AuthenticationError):
        return (
            f"the server refused the API key ({exc}); check --api-key or SANDBOX_API_KEY, or "
            "create a key with `sandbox keys create --owner NAME` on the server",
            2,
        )
    if isinstance(exc, SandboxError):
        return str(exc), 2
    if isinstance(exc, OSError) and exc.filename is not None:
        return file_problem(exc), 2
    return f"unexpected {type(exc).__name__}: {exc} (`sandbox --debug ...` shows the traceback)", 1


def _from_client(exc: BaseException) -> bool:
    """An error of `sandbox.client` reaching a server (not of the controller reaching its engine)."""
    import httpx

    return isinstance(exc.__cause__, httpx.TransportError)


def bad_setting(exc: ValidationError) -> str:
    """`SANDBOX_API__PORT: Input should be ...`, naming the variable to fix."""
    errors = exc.errors(include_url=False, include_input=False)  # inputs may be secrets
    first = errors[0]
    msg = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if not first["loc"]:
        return f"bad settings: {msg}{more}"
    return f"bad setting {env_name(first['loc'])}: {msg}{more}; fix it in the environment or .env"


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable a validation error's location names (the tag of a union's
    member, such as the backend's 'docker', is not part of it)."""
    names: list[str] = []
    models: list[type[BaseModel]] = [Settings]
    for part in loc:
        if not isinstance(part, str):
            continue  # a list index
        owner = next((m for m in models if part in m.model_fields), None)
        if owner is not None:
            names.append(part)
            models = _models(owner.model_fields[part].annotation)
        elif tagged := [m for m in models if _tag(m) == part]:
            models = tagged
        else:
            names.append(part)
            models = []
    return "SANDBOX_" + "__".join(names).upper()


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _tag(model: type[BaseModel]) -> object:
    field = model.model_fields.get("type")
    return field.default if field is not None else None


def engine_address(settings: Settings | None) -> str:
    """The Docker engine address the controller dials (as the docker SDK resolves it)."""
    if settings is not None and settings.docker_host:
        return settings.docker_host
    return os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE


def engine_unreachable(exc: BaseException) -> str:
    settings = current_settings()
    reason = short_reason(str(exc))
    return (
        f"no Docker engine answers at {engine_address(settings)} ({reason}). Start one "
        "(dockerd, or scripts/setup.sh), or set SANDBOX_DOCKER_HOST to its address; "
        "`sandbox doctor` checks the setup"
    )


def short_reason(message: str) -> str:
    """`Connection refused` out of a requests/urllib3 message several lines long."""
    for pattern in (r"\[Errno -?\d+\] ([^'\")\]]+)", r"\w+Error\(-?\d+, '([^']+)'\)"):
        found = re.findall(pattern, message)
        if found:
            return str(found[-1]).strip().rstrip(".")
    return message.splitlines()[0][-160:] if message else "no answer"


def file_problem(exc: OSError) -> str:
    settings = current_settings()
    what = f"cannot use {exc.filename}: {exc.strerror or exc}"
    if settings is not None and _under(str(exc.filename), str(settings.data_dir)):
        return (
            f"{what}. The data dir {settings.data_dir} must be writable by this user: set "
            "SANDBOX_DATA_DIR to a directory you own (e.g. ~/.local/share/sandbox), or run as root"
        )
    return what


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def current_settings() -> Settings | None:
    """The settings, or None when they do not validate (then that is the error to report)."""
    try:
        return Settings()
    except ValidationError:
        return None
