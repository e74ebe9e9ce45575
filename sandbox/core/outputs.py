"""A run's long output, saved whole in the session's workspace for later reading.

A result shown to a model keeps only the head and tail of a long stream (budget.py); the
whole stream (as much of it as the controller kept, `limits.output_bytes`) goes to
`/workspace/.outputs/<exec_id>/stdout` and `.../stderr` as the program wrote it, so code in
the next run can open it and `read_file` can page through it (PII tokenized like any file).
It counts against the workspace quota: when the quota is full nothing is saved and the
marker says so. Only the newest `keep` runs' outputs stay; older ones are removed.

The box owns the workspace and may have planted links or files where these go: every step
goes through SafeDir (no link is followed), and what cannot be written or removed is left.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from sandbox.core.budget import SAVE_OVER
from sandbox.exceptions import FileTypeError, NotFoundError, SandboxError
from sandbox.files import SafeDir
from sandbox.storage import SANDBOX_GID, SANDBOX_UID

logger = logging.getLogger(__name__)

OUTPUTS_DIR = ".outputs"
BOX_WORKSPACE = "/workspace"


def save_outputs(
    workspace: Path,
    exec_id: str,
    streams: dict[str, tuple[bytes, str]],
    keep: int,
    *,
    everything: bool = False,
) -> dict[str, str]:
    """Save each stream whose text (as shown) is longer than SAVE_OVER characters (with
    `everything`, each that is not empty: a cancelled run's, which nobody received) into the
    workspace; return the paths in the box of those saved. `streams` maps a name to (raw
    bytes, text shown)."""
    over = 0 if everything else SAVE_OVER
    long = {name: raw for name, (raw, text) in streams.items() if len(text) > over}
    if keep <= 0 or not long:
        return {}
    files = SafeDir(workspace, SANDBOX_UID, SANDBOX_GID)
    _prune(files, keep - 1)
    saved = {}
    for name, raw in long.items():
        rel = f"{OUTPUTS_DIR}/{exec_id}/{name}"
        try:
            files.write(rel, raw, len(raw))
        except (SandboxError, OSError) as exc:  # quota full, or the box planted something
            logger.info("output of run %s not saved: %s", exec_id, exc)
            continue
        saved[name] = f"{BOX_WORKSPACE}/{rel}"
    return saved


def _prune(files: SafeDir, keep: int) -> None:
    """Remove all but the newest `keep` runs' saved outputs."""
    try:
        entries = files.listing(OUTPUTS_DIR, max_entries=4096)
    except (NotFoundError, FileTypeError):
        return
    runs = [e for e in entries if e.kind == "dir" and e.path.count("/") == 1]
    runs.sort(key=lambda e: e.mtime, reverse=True)
    for old in runs[keep:]:
        for name in ("stdout", "stderr"):
            with contextlib.suppress(SandboxError, OSError):
                files.delete(f"{old.path}/{name}")
        with contextlib.suppress(SandboxError, OSError):
            files.rmdir(old.path)
