"""The sandbox image: its content-addressed tag, and building it (bootstrapping a base offline)."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from sandbox.backends.base import Backend
from sandbox.exceptions import ImageBuildError

logger = logging.getLogger(__name__)

BOOTSTRAP_TAG = "sbx-base:bookworm"
# Not sbx.managed: containers inherit their image's labels, and a container someone else
# makes from our image must never look like one of ours.
IMAGE_LABEL = "sbx.image"
_RUNTIME = Path(__file__).parent / "runtime" / "sbxrt.py"


def images_dir() -> Path:
    """images/ of a source checkout, or its copy inside an installed wheel."""
    packaged = Path(__file__).parent / "_images"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "images"


def image_tag() -> str:
    """A tag that changes whenever the Dockerfile or the runtime changes, so stale images are never run."""
    digest = hashlib.sha256(f"{IMAGE_LABEL}=1".encode())
    for path in (images_dir() / "Dockerfile.sandbox", _RUNTIME):
        digest.update(path.read_bytes())
    return f"sbx-sandbox:{digest.hexdigest()[:12]}"


def ensure_image(
    backend: Backend,
    base_image: str,
    progress: Callable[[str], None] | None = None,
    force: bool = False,
) -> str:
    """Return the sandbox image tag, building it first if the engine does not have it.

    Raises:
        ImageBuildError: neither the base image nor a bootstrapped one could be had, or the build failed.
    """
    say = progress or logger.info
    tag = image_tag()
    if backend.image_exists(tag) and not force:
        return tag
    base = base_image
    if not backend.image_exists(base):
        say(f"pulling base image {base}")
        if not backend.pull(base):
            say(f"{base} cannot be pulled; bootstrapping {BOOTSTRAP_TAG} from Debian packages")
            base = bootstrap_base(backend, say)
    with tempfile.TemporaryDirectory(prefix="sbx-build-") as tmp:
        context = Path(tmp)
        shutil.copy(images_dir() / "Dockerfile.sandbox", context / "Dockerfile.sandbox")
        # The same layout as the repository, so compose can build from the repository root.
        (context / "sandbox" / "runtime").mkdir(parents=True)
        shutil.copy(_RUNTIME, context / "sandbox" / "runtime" / "sbxrt.py")
        say(f"building {tag} from {base}")
        backend.build_image(
            context, "Dockerfile.sandbox", tag, {"BASE_IMAGE": base}, {IMAGE_LABEL: "1"}, say
        )
    return tag


def bootstrap_base(backend: Backend, say: Callable[[str], None]) -> str:
    """Make the Debian base image with images/bootstrap-base.sh unless it exists already."""
    if backend.image_exists(BOOTSTRAP_TAG):
        return BOOTSTRAP_TAG
    script = images_dir() / "bootstrap-base.sh"
    proc = subprocess.run(
        ["bash", str(script), BOOTSTRAP_TAG], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ImageBuildError(f"bootstrapping the base image failed: {proc.stderr.strip()[-2000:]}")
    say(f"bootstrapped {BOOTSTRAP_TAG}")
    return BOOTSTRAP_TAG
