from __future__ import annotations

import json
from typing import Any

from sandbox import Session


def probe(session: Session, code: str, timeout: float | None = None) -> Any:
    """Run probe code whose last stdout line is JSON, and return that value."""
    r = session.run(code, timeout=timeout)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])
