"""What the routes share: the orchestrator (once the engine answers) and the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from sandbox.core.orchestrator import Orchestrator
from sandbox.exceptions import ServiceStartingError
from sandbox.http_api.idempotency import IdempotencyStore
from sandbox.keys import KeyStore
from sandbox.models import RunResult
from sandbox.settings import Settings


@dataclass
class AppState:
    settings: Settings
    keys: KeyStore
    orchestrator: Orchestrator | None = None
    startup_error: str = "connecting"
    idempotency: IdempotencyStore[RunResult] = field(init=False)

    def __post_init__(self) -> None:
        rules = self.settings.api
        self.idempotency = IdempotencyStore(
            self.settings.data_dir / "idempotency",
            lambda r: r.model_dump_json().encode(),
            RunResult.model_validate_json,
            ttl_s=rules.idempotency_ttl_s,
            max_bytes=rules.idempotency_bytes,
        )

    def orc(self) -> Orchestrator:
        """Raises ServiceStartingError until the engine has answered."""
        if self.orchestrator is None:
            raise ServiceStartingError("the controller is starting")
        return self.orchestrator


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.sbx
    return state
