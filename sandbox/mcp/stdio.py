"""`sandbox mcp`: MCP over stdio, as many processes side by side on one machine as there are
clients (Claude Desktop, Cursor, two Claude Code windows), with or without an engine.

Each process is a controller of its own in a slot: it takes the first free
`<data_dir>/mcp/<n>/` (n = 1..MAX_SLOTS) as its `state_dir`, holding that slot's lock for its
life, with the controller id `<controller_id>-mcp<n>`. Its lock, audit trail, workspaces, run
sockets and generated tool code live there; the owner's skills, the secrets and the audit
keys stay in `<data_dir>`, shared. A slot taken again is first cleared of what a process that
died in it left (containers and unfinished runs, by the slot's controller id), as any
controller does at start. docs/architecture.md says why slots rather than a shared daemon.

Without an engine the server starts anyway: every tool answers with what is wrong and how to
fix it, and a call tries the engine again (at most every `retry_s`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from sandbox.core.admission import Admission
from sandbox.core.orchestrator import Orchestrator
from sandbox.exceptions import (
    BackendError,
    BackendUnavailableError,
    ControllerBusyError,
    SandboxError,
    ServiceStartingError,
)
from sandbox.mcp.server import build_mcp_server
from sandbox.models import validate_id
from sandbox.settings import Settings

logger = logging.getLogger(__name__)

MAX_SLOTS = 32


class NoFreeSlotError(SandboxError, RuntimeError):
    """Every stdio slot of this data directory is held by a live `sandbox mcp`."""

    code, http_status = "too_many_servers", 503


def slot_settings(settings: Settings, n: int) -> Settings:
    """The settings of stdio slot `n`: its own state dir and controller id."""
    return settings.model_copy(
        update={
            "state_dir": settings.data_dir / "mcp" / str(n),
            "controller_id": f"{settings.controller_id}-mcp{n}",
        }
    )


def open_slot(settings: Settings, slots: int = MAX_SLOTS) -> Orchestrator:
    """An orchestrator in the first free slot.

    Raises:
        NoFreeSlotError: every slot is taken.
        BackendUnavailableError, ImageBuildError, ...: as `Orchestrator` raises.
    """
    for n in range(1, slots + 1):
        try:
            return Orchestrator(slot_settings(settings, n))
        except ControllerBusyError:
            continue  # a live `sandbox mcp` holds it
    raise NoFreeSlotError(
        f"{slots} `sandbox mcp` servers already run on {settings.data_dir}: close one, or "
        "give this one a data directory of its own (SANDBOX_DATA_DIR)"
    )


class Connector:
    """The stdio server's orchestrator, made in the background and made again after a
    failure; `get()` is what the tools call."""

    def __init__(
        self,
        make: Callable[[], Orchestrator],
        engine: str,
        *,
        retry_s: float = 2.0,
        wait_s: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make, self._engine = make, engine
        self._retry_s, self._wait_s, self._clock = retry_s, wait_s, clock
        self._lock = threading.Lock()
        self._orc: Orchestrator | None = None
        self._error: SandboxError | None = None
        self._attempt: threading.Thread | None = None
        self._last = float("-inf")

    def start(self) -> None:
        """Try now, in the background (the MCP handshake does not wait for the engine)."""
        with self._lock:
            self._try_locked()

    def get(self) -> Orchestrator:
        """The orchestrator, once it exists.

        Raises:
            BackendUnavailableError: no engine answers, saying how to fix that.
            ServiceStartingError: still starting (the first start builds the image).
            NoFreeSlotError, BackendError: it could not start for another reason.
        """
        orc = self._orc
        if orc is not None:
            return orc
        with self._lock:
            if self._attempt is None and self._clock() - self._last >= self._retry_s:
                self._try_locked()
            attempt = self._attempt
        if attempt is not None:
            attempt.join(self._wait_s)
        if self._orc is not None:
            return self._orc
        error = self._error
        if error is None or (self._attempt is not None and self._attempt.is_alive()):
            raise ServiceStartingError(
                "the sandbox is still starting (its first start builds the sandbox image, "
                "which can take a few minutes); try again shortly"
            )
        raise error

    def _try_locked(self) -> None:
        self._last = self._clock()
        self._attempt = threading.Thread(target=self._connect, name="sbx-connect", daemon=True)
        self._attempt.start()

    def _connect(self) -> None:
        try:
            orc = self._make()
        except BackendUnavailableError as exc:
            error: SandboxError = BackendUnavailableError(
                f"no container engine answers at {self._engine} ({exc}). Start Docker (e.g. "
                "`sudo systemctl start docker`, or `sudo dockerd &`), or point DOCKER_HOST "
                "(or SANDBOX_DOCKER_HOST) at a running engine; `sandbox doctor` checks the "
                "setup. This server tries again on your next call."
            )
        except NoFreeSlotError as exc:
            error = exc
        except SandboxError as exc:
            logger.error("the sandbox could not start: %s", exc)
            error = BackendError(
                f"the sandbox could not start: {exc}. `sandbox doctor` says what is missing; "
                "this server tries again on your next call."
            )
        else:
            with self._lock:
                self._orc, self._error, self._attempt = orc, None, None
            return
        with self._lock:
            self._error, self._attempt = error, None

    def close(self) -> None:
        with self._lock:
            attempt = self._attempt
        if attempt is not None:
            attempt.join(self._wait_s)
        if self._orc is not None:
            self._orc.close()


def engine_address(settings: Settings) -> str:
    """The engine address a Docker backend tries, for messages."""
    # The stdio server is an edge of the package, as the CLI is: it may read the environment.
    return settings.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def run_stdio(settings: Settings, owner: str, profiles: tuple[str, ...] | None = None) -> None:
    """Serve MCP over stdio until the client closes it (or SIGTERM); then its sessions close.

    `profiles` limits the policy profiles this owner's sessions may use (None: any).
    """
    # MCP clients end a stdio server with SIGTERM; exit through `finally` so sessions close.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    connector = Connector(lambda: open_slot(settings), engine_address(settings))
    connector.start()
    local = Admission.local(validate_id(owner, "owner"), profiles)  # needs no engine
    server = build_mcp_server(connector.get, settings=settings, local=local)
    try:
        server.run()
    finally:
        server.sandbox_sessions.close_all()  # type: ignore[attr-defined]
        connector.close()
