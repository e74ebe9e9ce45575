"""`sandbox` command line: a thin layer over the Orchestrator."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from sandbox.cli_approvals import app as approvals_app
from sandbox.cli_doctor import doctor
from sandbox.cli_errors import DEBUG, SandboxGroup, explain, fail
from sandbox.exceptions import ControllerBusyError, SandboxError
from sandbox.settings import Settings

app = typer.Typer(
    cls=SandboxGroup,
    no_args_is_help=True,
    add_completion=False,
    help=__doc__,
    # --debug tracebacks never print local variables: they may hold keys and secrets.
    pretty_exceptions_show_locals=False,
)
images_app = typer.Typer(no_args_is_help=True, help="Build and inspect the sandbox image.")
app.add_typer(images_app, name="images")
keys_app = typer.Typer(no_args_is_help=True, help="API keys: each names one owner.")
app.add_typer(keys_app, name="keys")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail.")
app.add_typer(audit_app, name="audit")
secrets_app = typer.Typer(
    no_args_is_help=True, help="Encrypted credentials for upstream MCP servers."
)
app.add_typer(secrets_app, name="secrets")
app.add_typer(approvals_app, name="approvals")


def _secret_store(settings: Settings):  # type: ignore[no-untyped-def]
    from sandbox.secrets import SecretStore, master_key

    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    return SecretStore(settings.data_dir / "secrets.json", master_key(key, settings.data_dir))


OwnerOption = Annotated[
    str | None,
    typer.Option(
        help="An owner's own secret: their connections take it before the deployment's "
        "of the same name."
    ),
]


@secrets_app.command("set")
def secrets_set(
    name: Annotated[str, typer.Argument(help="Referred to as ${secret:NAME} in mcpServers.")],
    owner: OwnerOption = None,
) -> None:
    """Store a secret read from standard input (never from the command line)."""
    value = sys.stdin.read().rstrip("\n")
    if not value:
        raise _fail(ValueError("no secret on standard input"))
    settings = Settings()
    try:
        _secret_store(settings).set(name, value, owner=owner)
    except SandboxError as exc:
        raise _fail(exc) from exc
    _admin_event(settings, "secret_set", name=name, owner=owner)
    typer.echo(f"stored secret {name!r}" + (f" for owner {owner!r}" if owner else ""))


@secrets_app.command("list")
def secrets_list(
    owner: OwnerOption = None,
    owners: Annotated[bool, typer.Option("--owners", help="Owners that have secrets.")] = False,
) -> None:
    """Names of stored secrets (never their values): the deployment's, or an owner's."""
    store = _secret_store(Settings())
    for name in store.owners() if owners else store.names(owner):
        typer.echo(name)


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every secret under a new deployment secret read from standard input; then
    set SANDBOX_SECRET_KEY to it."""
    new = sys.stdin.read().strip()
    settings = Settings()
    try:
        _secret_store(settings).rotate(new.encode())
    except SandboxError as exc:
        raise _fail(exc) from exc
    if settings.secret_key is None:  # the key lives in the data dir: keep it in step
        (settings.data_dir / "secret.key").write_text(new)
    _admin_event(settings, "secrets_rotated")
    typer.echo("re-encrypted; now set SANDBOX_SECRET_KEY to the new secret")


@secrets_app.command("delete")
def secrets_delete(name: str, owner: OwnerOption = None) -> None:
    settings = Settings()
    try:
        _secret_store(settings).delete(name, owner=owner)
    except SandboxError as exc:
        raise _fail(exc) from exc
    _admin_event(settings, "secret_deleted", name=name, owner=owner)
    typer.echo(f"deleted secret {name!r}" + (f" for owner {owner!r}" if owner else ""))


def _audit_paths(settings: Settings) -> tuple[Path, Path]:
    return (
        settings.audit_log or settings.own_dir / "audit.log",
        settings.audit_keys or settings.data_dir / "audit-keys.json",
    )


def _admin_event(settings: Settings, event: str, **fields: object) -> None:
    from sandbox.audit import AuditKeys, AuditLog

    log_path, keys_path = _audit_paths(settings)
    log = AuditLog(log_path, AuditKeys.load_or_create(keys_path))
    try:
        log.record(event, actor="cli", **fields)
    finally:
        log.close()


@audit_app.command("verify")
def audit_verify(
    path: Annotated[
        Path | None, typer.Argument(help="The log (default: the data dir's audit.log).")
    ] = None,
) -> None:
    """Check the chain, MACs, sequence and checkpoint; exit 0 when intact, 1 naming each problem."""
    from sandbox.audit import AuditKeys, verify

    settings = Settings()
    log_path, keys_path = _audit_paths(settings)
    if not keys_path.exists():
        raise _fail(FileNotFoundError(f"no audit keys at {keys_path}"))
    verdict = verify(path or log_path, AuditKeys.load_or_create(keys_path))
    for problem in verdict.problems:
        typer.secho(problem, fg=typer.colors.RED)
    typer.echo(f"{verdict.records} records, {'intact' if verdict.ok else 'NOT intact'}")
    raise typer.Exit(0 if verdict.ok else 1)


@audit_app.command("rotate-key")
def audit_rotate_key() -> None:
    """Start a new MAC key epoch; earlier records stay verifiable with their own key."""
    from sandbox.audit import AuditKeys

    settings = Settings()
    _, keys_path = _audit_paths(settings)
    kid = AuditKeys.load_or_create(keys_path).rotate(keys_path)
    _admin_event(settings, "audit_key_rotated", kid=kid)
    typer.echo(f"new audit key {kid}")


def _fail(exc: BaseException) -> typer.Exit:
    return fail(*explain(exc))


@app.callback()
def _options(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar="SANDBOX_DEBUG",
            help="Show the traceback of an error, and debug logs, instead of one line.",
        ),
    ] = False,
) -> None:
    ctx.meta[DEBUG] = debug
    if debug:
        logging.getLogger("sandbox").setLevel(logging.DEBUG)


@app.command()
def run(
    file: Annotated[str, typer.Argument(help="Python file to run, or - for stdin.")],
    timeout: Annotated[float | None, typer.Option(help="Seconds before the run is killed.")] = None,
    owner: Annotated[str, typer.Option(help="Owner whose /skills the run sees.")] = "cli",
    profile: Annotated[str, typer.Option(help="Policy profile of the run.")] = "default",
) -> None:
    """Run a Python file in a fresh sandbox and exit with its exit code. Its output is printed
    as a model would see it: personal data as tokens such as [EMAIL_1]
    (SANDBOX_PII__ENABLED=false prints it raw)."""
    from sandbox.orchestrator import Orchestrator

    try:
        code = sys.stdin.read() if file == "-" else Path(file).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise fail(
            f"cannot read {file}: {reason}; give a Python file, or - for standard input"
        ) from None
    settings = Settings(warm=False)
    try:
        with Orchestrator(settings) as orc, orc.session(owner=owner, profile=profile) as session:
            result = session.run(code, timeout=timeout)
    except SandboxError as exc:
        raise _fail(exc) from exc
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.timed_out:
        typer.secho("sandbox: run timed out", fg=typer.colors.YELLOW, err=True)
    if result.oom_killed:
        typer.secho(
            "sandbox: run was killed for using too much memory", fg=typer.colors.YELLOW, err=True
        )
    if result.output_truncated:
        typer.secho("sandbox: output was truncated", fg=typer.colors.YELLOW, err=True)
    raise typer.Exit(result.exit_code if 0 <= result.exit_code <= 255 else 1)


@app.command()
def gc() -> None:
    """Remove sandbox containers left by a dead controller or past their deadline."""
    from sandbox.orchestrator import Orchestrator, collect_garbage

    settings = Settings()
    try:
        with Orchestrator(settings) as orc:
            removed = orc.gc()
        typer.echo(
            f"removed leftovers of controller {settings.controller_id!r}; {removed} more expired"
        )
    except ControllerBusyError:
        # A live controller owns the data dir: only what is past its deadline may go.
        typer.echo(f"removed {collect_garbage(settings)} expired containers")
    except SandboxError as exc:
        raise _fail(exc) from exc


@images_app.command("build")
def images_build(
    force: Annotated[bool, typer.Option(help="Rebuild even if the image exists.")] = False,
) -> None:
    """Build the sandbox image (bootstrapping a Debian base when no registry answers)."""
    from sandbox.backends import make_backend
    from sandbox.images import ensure_image

    settings = Settings()
    try:
        backend = make_backend(settings.backend)
        tag = ensure_image(backend, settings.base_image, progress=typer.echo, force=force)
    except SandboxError as exc:
        raise _fail(exc) from exc
    typer.echo(tag)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080).")] = None,
) -> None:
    """Serve the HTTP API, with the MCP endpoint at /mcp."""
    from sandbox.http_api import serve as run_server

    settings = Settings()
    run_server(settings, host or settings.api.host, port or settings.api.port)


@app.command()
def mcp(
    owner: Annotated[
        str, typer.Option(help="Owner of the sessions (whose /skills they see).")
    ] = "mcp",
    profile: Annotated[
        list[str] | None,
        typer.Option(help="Profiles the session may use (repeat); the first is used. Default any."),
    ] = None,
) -> None:
    """Serve MCP over stdio (for Claude Desktop, Claude Code, Cursor...)."""
    from sandbox.mcp import run_stdio

    logging.getLogger().setLevel(logging.ERROR)  # stdout belongs to the protocol
    run_stdio(Settings(), owner, tuple(profile) if profile else None)


@keys_app.command("create")
def keys_create(
    owner: Annotated[str, typer.Option(help="The owner this key acts for.")],
    profile: Annotated[
        list[str] | None, typer.Option(help="Profiles it may use (repeat); default any.")
    ] = None,
) -> None:
    """Create a key and print it once; only its hash is kept."""
    from sandbox.keys import KeyStore

    try:
        record, secret = KeyStore(Settings().data_dir / "keys.json").create(owner, profile or None)
    except SandboxError as exc:
        raise _fail(exc) from exc
    _admin_event(Settings(), "key_created", key_id=record.id, owner=record.owner)
    typer.echo(secret)
    typer.echo(f"key {record.id} for owner {record.owner!r}; it is not shown again", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """List keys (ids and owners, never the keys)."""
    import datetime

    from sandbox.keys import KeyStore

    for k in KeyStore(Settings().data_dir / "keys.json").list():
        created = datetime.datetime.fromtimestamp(k.created, datetime.UTC).isoformat(
            timespec="seconds"
        )
        typer.echo(f"{k.id}  {k.owner:<24} created {created}{'  REVOKED' if k.revoked else ''}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (from `keys list`).")],
) -> None:
    """Revoke a key at once."""
    from sandbox.keys import KeyStore

    try:
        KeyStore(Settings().data_dir / "keys.json").revoke(key_id)
    except SandboxError as exc:
        raise _fail(exc) from exc
    _admin_event(Settings(), "key_revoked", key_id=key_id)
    typer.echo(f"revoked {key_id}")


app.command()(doctor)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
