"""`sandbox doctor`: check the setup, naming what was tried (the settings, the data dir, the
engine address, the image) and how to fix what is missing."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import typer
from pydantic import ValidationError

from sandbox.cli_errors import bad_setting, engine_address, short_reason
from sandbox.exceptions import SandboxError
from sandbox.settings import Settings

_MARK = {
    "ok": ("ok  ", typer.colors.GREEN),
    "fail": ("FAIL", typer.colors.RED),
    "skip": ("skip", typer.colors.YELLOW),
    "info": ("info", None),
}


class Report:
    """Lines of `ok / FAIL / skip / info <what>`, each failure with the fix under it."""

    def __init__(self) -> None:
        self.problems = 0

    def line(self, status: str, what: str, fix: str = "") -> None:
        mark, colour = _MARK[status]
        self.problems += status == "fail"
        text = f"{mark} {what}" + (f"\n     fix: {fix}" if fix and status == "fail" else "")
        typer.secho(text, fg=colour)

    def check(self, ok: bool, what: str, fix: str) -> bool:
        self.line("ok" if ok else "fail", what, fix)
        return ok


def doctor() -> None:
    """Check the engine, image, runtimes and settings, and say how to fix what is missing."""
    report = Report()
    try:
        settings = Settings()
    except ValidationError as exc:
        report.line("fail", bad_setting(exc), "see the settings table in README.md")
        raise typer.Exit(1) from None
    report.line("ok", f"settings (controller {settings.controller_id!r})")
    check_data_dir(report, settings.data_dir)
    if settings.backend.type == "local":
        report.line("info", "backend local: sandbox code runs as host processes, NO isolation")
    else:
        check_engine(report, settings)
    report.check(
        settings.workspace_backing != "directory",
        f"workspace quota ({settings.workspace_backing})",
        "run the controller as root so workspaces are size-capped tmpfs mounts",
    )
    from sandbox.pii import HYPERSCAN

    report.check(
        HYPERSCAN, "hyperscan for fast PII scanning", "pip install hyperscan (x86_64/aarch64 Linux)"
    )
    if settings.mcp_config is not None:
        report.check(
            settings.mcp_config.is_file(),
            f"MCP config {settings.mcp_config}",
            "point SANDBOX_MCP_CONFIG at an mcpServers JSON file",
        )
    raise typer.Exit(1 if report.problems else 0)


def check_data_dir(report: Report, data_dir: Path) -> None:
    """Writable (or creatable) by this user, and whether a running controller holds it."""
    existing = data_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    writable = existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
    state = "exists" if existing == data_dir else f"will be created in {existing}"
    ok = report.check(
        writable,
        f"data dir {data_dir} ({state}, {'writable' if writable else 'NOT writable'} by uid {os.getuid()})",
        "set SANDBOX_DATA_DIR to a directory you own (e.g. ~/.local/share/sandbox), or run as root",
    )
    lock = data_dir / "controller.lock"
    if ok and lock.is_file() and _held(lock):
        report.line(
            "info",
            f"a running controller holds {data_dir} (`sandbox serve`, `sandbox run` or an "
            "embedded Orchestrator): another one on it is refused; `sandbox mcp` servers are "
            "not (each takes a slot of its own under mcp/)",
        )


def _held(lock: Path) -> bool:
    # A shared lock conflicts only with a controller's exclusive one, and is dropped at once.
    with lock.open("rb") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def check_engine(report: Report, settings: Settings) -> None:
    """The engine at its address, then what needs it: the image and the runtime."""
    # doctor examines the Docker engine itself (runtimes, versions), not just the contract.
    from sandbox.backends.docker import DockerBackend, DockerBackendConfig
    from sandbox.images import image_tag

    address = engine_address(settings)
    tag = settings.image or image_tag()
    try:
        backend = DockerBackend(DockerBackendConfig(base_url=settings.docker_host))
        backend.ping()
        version = backend.info().get("ServerVersion", "?")
    except SandboxError as exc:
        report.check(
            False,
            f"Docker engine at {address}: {short_reason(str(exc))}",
            "start one (apt-get install -y docker.io && dockerd, or scripts/setup.sh), or set "
            "SANDBOX_DOCKER_HOST to its address",
        )
        report.line("skip", f"sandbox image {tag} (needs the engine)")
        report.check(
            shutil.which("debootstrap") is not None,
            "debootstrap (to bootstrap the base image offline)",
            "apt-get install -y debootstrap",
        )
        return
    report.line("ok", f"Docker engine at {address} (version {version})")
    report.check(backend.image_exists(tag), f"sandbox image {tag}", "sandbox images build")
    registered = backend.info().get("Runtimes")
    runtimes = set(registered) if isinstance(registered, dict) else set()
    report.check(
        settings.runtime in runtimes or not runtimes,
        f"runtime {settings.runtime!r} registered",
        "register runsc in /etc/docker/daemon.json and restart dockerd",
    )
    backend.close()
