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
DOCKERFILE = "Dockerfile.sandbox"
RUNTIME_DIR = Path(__file__).parent / "runtime"
_CACHES = frozenset({"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"})


def images_dir() -> Path:
    """images/ of a source checkout, or its copy inside an installed wheel."""
    packaged = Path(__file__).parent / "_images"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "images"


def dockerfile() -> Path:
    """The sandbox Dockerfile: at the root of a source checkout, in _images/ inside a wheel."""
    packaged = Path(__file__).parent / "_images" / DOCKERFILE
    return packaged if packaged.is_file() else Path(__file__).parent.parent / DOCKERFILE


def runtime_files(runtime_dir: Path = RUNTIME_DIR) -> list[Path]:
    """Every file the image ships from the runtime folder (caches left out), sorted by path."""
    return sorted(
        p
        for p in runtime_dir.rglob("*")
        if p.is_file()
        and not _CACHES.intersection(p.relative_to(runtime_dir).parts)
        and p.suffix not in (".pyc", ".pyo")
    )


def image_tag(runtime_dir: Path = RUNTIME_DIR, dockerfile_path: Path | None = None) -> str:
    """A tag that changes whenever the Dockerfile or any runtime file changes, so stale images
    are never run."""
    digest = hashlib.sha256(f"{IMAGE_LABEL}=1".encode())
    _hash_file(digest.update, DOCKERFILE, dockerfile_path or dockerfile())
    for path in runtime_files(runtime_dir):
        _hash_file(digest.update, path.relative_to(runtime_dir).as_posix(), path)
    return f"sbx-sandbox:{digest.hexdigest()[:12]}"


def _hash_file(update: Callable[[bytes], None], name: str, path: Path) -> None:
    # Name and size first: no file's end can pass for the next file's start.
    data = path.read_bytes()
    update(b"%s\0%d\0" % (name.encode(), len(data)))
    update(data)


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
        shutil.copy(dockerfile(), context / DOCKERFILE)
        # The repository's layout, so `docker build -f Dockerfile.sandbox .` works from its root.
        for path in runtime_files():
            target = context / "sandbox" / "runtime" / path.relative_to(RUNTIME_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
        say(f"building {tag} from {base}")
        backend.build_image(context, DOCKERFILE, tag, {"BASE_IMAGE": base}, {IMAGE_LABEL: "1"}, say)
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
