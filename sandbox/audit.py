"""Security-relevant events as JSON lines. Never holds raw secrets: tokens appear as a short hash.

This is the sink every component writes to; the hash chain and verifier build on it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class AuditLog:
    """Append-only JSON-lines audit trail, fsync'd per record."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def record(self, event: str, **fields: Any) -> None:
        line = json.dumps(
            {"ts": time.time(), "event": event, **fields}, default=str, sort_keys=True
        )
        with self._lock:
            if self._fd is not None:
                os.write(self._fd, line.encode() + b"\n")
                os.fsync(self._fd)

    def read(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
