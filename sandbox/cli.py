"""`sandbox` command line: a thin layer over the Orchestrator."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from sandbox.exceptions import ControllerBusyError, SandboxError
from sandbox.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
images_app = typer.Typer(no_args_is_help=True, help="Build and inspect the sandbox image.")
app.add_typer(images_app, name="images")


def _fail(exc: BaseException) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


@app.command()
def run(
    file: Annotated[str, typer.Argument(help="Python file to run, or - for stdin.")],
    timeout: Annotated[float | None, typer.Option(help="Seconds before the run is killed.")] = None,
    owner: Annotated[str, typer.Option(help="Owner whose /skills the run sees.")] = "cli",
) -> None:
    """Run a Python file in a fresh sandbox; print its output and exit with its exit code."""
    from sandbox.orchestrator import Orchestrator

    code = sys.stdin.read() if file == "-" else Path(file).read_text()
    settings = Settings(warm=False)
    try:
        with Orchestrator(settings) as orc, orc.session(owner=owner) as session:
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
    from sandbox.backends.docker import DockerBackend, DockerBackendConfig
    from sandbox.images import ensure_image

    settings = Settings()
    try:
        backend = DockerBackend(DockerBackendConfig(base_url=settings.docker_host))
        tag = ensure_image(backend, settings.base_image, progress=typer.echo, force=force)
    except SandboxError as exc:
        raise _fail(exc) from exc
    typer.echo(tag)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()
