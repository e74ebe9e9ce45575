"""What every backend must do: one class of tests, run once per backend.

A backend's test module subclasses `BackendContract` and provides three fixtures:

    contract_backend      the Backend under test
    contract_image        an image the backend can run the runtime from
    contract_controller   a controller id for this test run (every box made carries it, so a
                          safety net can remove by label whatever a failed test left)

Boxes are made as the Orchestrator makes them (`Session._prepare`): a real RunChannel, a spec
from `policy.launch_spec` and `labels_for`, then create, start and the runtime's handshake.

Posture: `backend.enforced` names the LaunchSpec fields the backend claims to honour. The
fields in CHECKED_HERE are checked by this class for every backend that claims them; a
backend module that claims more lists them in `checked_elsewhere` and checks them itself
(Docker inspects its containers). A claim nobody checks fails
`test_every_claimed_field_is_checked_somewhere`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from sandbox import policy
from sandbox.backends.base import (
    LABEL_CONTROLLER,
    LABEL_MANAGED,
    LABEL_SESSION,
    LAUNCH_SPEC_FIELDS,
    Backend,
    ContainerRef,
    LaunchSpec,
)
from sandbox.channel import Collected, RunChannel
from sandbox.exceptions import BackendError, NotFoundError, SandboxError
from sandbox.models import Limits, MiB
from sandbox.storage import SANDBOX_GID, SANDBOX_UID

CHECKED_HERE: frozenset[str] = frozenset(
    {"image", "labels", "env", "mounts", "nofile", "fsize_bytes"}
)
"""Claims this class checks on every backend (a missing image, labels, env seen from inside,
mounts and their read-only flag, rlimits seen from inside)."""
START_TIMEOUT_S = 20.0
RUN_TIMEOUT_S = 20.0
KILLED = 128 + 9  # SIGKILL, as container engines report it


@dataclass
class Box:
    ref: ContainerRef
    channel: RunChannel
    spec: LaunchSpec


class Boxes:
    """Makes boxes like the Orchestrator does, and removes every one it made."""

    def __init__(self, backend: Backend, image: str, controller: str, base: Path) -> None:
        self.backend = backend
        self.image = image
        # One controller id per test, so "exactly these boxes" is about this test alone.
        self.controller = f"{controller}c{secrets.token_hex(3)}"
        self.workspace = base / "workspace"
        self.skills = base / "skills"
        self.runs = base / "runs"
        for folder in (self.workspace, self.skills, self.runs):
            folder.mkdir()
        (self.skills / "hello.txt").write_text("hello from skills")
        if os.getuid() == 0:
            # As the Orchestrator's storage does: the box user owns its workspace.
            os.chown(self.workspace, SANDBOX_UID, SANDBOX_GID)
        self.made: list[Box] = []

    def create(
        self,
        *,
        session: str = "s1",
        image: str | None = None,
        env: dict[str, str] | None = None,
        **spec_fields: object,
    ) -> Box:
        channel = RunChannel(self.runs, SANDBOX_UID, SANDBOX_GID)
        labels = policy.labels_for(self.controller, "owner1", session, secrets.token_hex(16), 600.0)
        spec = policy.launch_spec(
            image=image or self.image,
            limits=Limits(),
            runtime="runc",
            workspace=self.workspace,
            skills=self.skills,
            channel_dir=channel.dir,
            labels=labels,
        )
        spec = dataclasses.replace(spec, env=env or {}, **spec_fields)  # type: ignore[arg-type]
        try:
            ref = self.backend.create(spec)
        except BaseException:
            channel.close()
            raise
        box = Box(ref, channel, spec)
        self.made.append(box)
        return box

    def started(self, **kwargs: object) -> Box:
        """A box whose runtime has dialled in and waits for its code (a warm container)."""
        box = self.create(**kwargs)  # type: ignore[arg-type]
        self.backend.start(box.ref)
        box.channel.accept_runtime(time.monotonic() + START_TIMEOUT_S)
        return box

    def run(self, code: str, **kwargs: object) -> Collected:
        box = self.started(**kwargs)
        box.channel.deliver(code, {}, box.spec.workdir, "tok")
        return box.channel.collect(time.monotonic() + RUN_TIMEOUT_S, 1 << 20, _no_calls)

    def probe(self, code: str, **kwargs: object) -> dict[str, object]:
        """Run code whose last stdout line is a JSON object, and return it."""
        got = self.run(code, **kwargs)
        assert got.exit_code == 0, got.stderr.decode(errors="replace")
        value = json.loads(got.stdout.decode().strip().splitlines()[-1])
        assert isinstance(value, dict)
        return value

    def close(self) -> None:
        for box in self.made:
            self.backend.remove(box.ref)
            box.channel.close()
        # The safety net: anything with this test's controller id that escaped the list above.
        for leftover in self.backend.list_managed({LABEL_CONTROLLER: self.controller}):
            self.backend.remove(leftover.ref)


def _no_calls(body: bytes, reply: object) -> None:
    raise AssertionError("no tool calls expected")


def _ids(backend: Backend, labels: dict[str, str]) -> set[str]:
    return {c.ref.id for c in backend.list_managed(labels)}


def _unknown_ref() -> ContainerRef:
    # Full length, so an engine that resolves id prefixes cannot match a real container.
    return ContainerRef(secrets.token_hex(32))


def _lock_within(path: Path, timeout: float) -> bool:
    """Whether an exclusive flock on `path` can be had within `timeout` seconds."""
    fd = os.open(path, os.O_RDONLY)
    taken = threading.Event()

    def take() -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        taken.set()
        os.close(fd)

    threading.Thread(target=take, daemon=True).start()
    return taken.wait(timeout)


# Prints where each mount's target lies under the box's root ($SBX_ROOT, "/" in a container).
ROOT = "__import__('os').environ.get('SBX_ROOT', '/')"


class BackendContract:
    """Every backend passes these. Subclass it and provide the three contract fixtures."""

    checked_elsewhere: ClassVar[frozenset[str]] = frozenset()

    @pytest.fixture
    def boxes(
        self,
        contract_backend: Backend,
        contract_image: str,
        contract_controller: str,
        tmp_path: Path,
    ) -> Iterator[Boxes]:
        made = Boxes(contract_backend, contract_image, contract_controller, tmp_path)
        yield made
        made.close()

    # -- claims ----------------------------------------------------------------------------

    def test_claims_name_only_launch_spec_fields(self, contract_backend: Backend) -> None:
        assert contract_backend.enforced <= LAUNCH_SPEC_FIELDS

    def test_every_claimed_field_is_checked_somewhere(self, contract_backend: Backend) -> None:
        unchecked = contract_backend.enforced - CHECKED_HERE - self.checked_elsewhere
        assert not unchecked, f"claimed but never checked: {sorted(unchecked)}"

    # -- lifecycle and handshake -----------------------------------------------------------

    def test_a_started_box_dials_in_runs_the_code_and_reports_its_exit(self, boxes: Boxes) -> None:
        got = boxes.run("import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)")
        assert (got.stdout, got.stderr, got.exit_code) == (b"out\n", b"err\n", 3)
        assert not got.timed_out and not got.truncated

    def test_the_code_runs_in_the_workspace_and_sees_every_mount(self, boxes: Boxes) -> None:
        got = boxes.probe(
            f"""
import json, os
open('made-inside.txt', 'w').write('hi')
root = {ROOT}
skills = open(os.path.join(root, 'skills', 'hello.txt')).read()
socket_dir = os.path.isdir(os.path.join(root, 'run', 'sbx'))
print(json.dumps({{"skills": skills, "run_sbx": socket_dir}}))
"""
        )
        assert (boxes.workspace / "made-inside.txt").read_text() == "hi"
        assert got == {"skills": "hello from skills", "run_sbx": True}

    def test_read_only_mounts_cannot_be_written_when_mounts_are_claimed(
        self, boxes: Boxes, contract_backend: Backend
    ) -> None:
        if "mounts" not in contract_backend.enforced:
            pytest.skip("this backend does not claim to enforce read-only mounts")
        # Writable by anyone but for the mount's read-only flag, so only that flag can refuse.
        boxes.skills.chmod(0o777)
        got = boxes.probe(
            f"""
import errno, json, os
try:
    open(os.path.join({ROOT}, 'skills', 'planted.txt'), 'w').write('x'); result = 'OK'
except OSError as e:
    result = errno.errorcode[e.errno]
print(json.dumps({{"write": result}}))
"""
        )
        assert got["write"] == "EROFS"
        assert not (boxes.skills / "planted.txt").exists()

    def test_wait_returns_none_while_the_box_runs(
        self, boxes: Boxes, contract_backend: Backend
    ) -> None:
        box = boxes.started()
        assert contract_backend.wait(box.ref, 0.2) is None

    def test_wait_on_a_box_that_was_never_started_does_not_hang(
        self, boxes: Boxes, contract_backend: Backend
    ) -> None:
        box = boxes.create()
        assert contract_backend.wait(box.ref, 5.0) is not None

    def test_kill_ends_a_long_sleep_and_wait_then_reports_it_stopped(
        self, boxes: Boxes, contract_backend: Backend
    ) -> None:
        box = boxes.started()
        box.channel.deliver("import time; time.sleep(600)", {}, box.spec.workdir, "tok")
        assert contract_backend.wait(box.ref, 0.2) is None
        contract_backend.kill(box.ref)
        info = contract_backend.wait(box.ref, 10.0)
        assert info is not None and info.exit_code == KILLED and not info.oom_killed
        # Every end of the channel inside the box is closed: collect sees the box gone.
        got = box.channel.collect(time.monotonic() + 10.0, 1 << 20, _no_calls)
        assert not got.timed_out and got.exit_code is None
        contract_backend.kill(box.ref)  # a stopped box is fine

    def test_kill_ends_every_process_of_the_box(
        self, boxes: Boxes, contract_backend: Backend
    ) -> None:
        lock = boxes.workspace / "held.lock"
        lock.touch()
        if os.getuid() == 0:
            os.chown(lock, SANDBOX_UID, SANDBOX_GID)
        box = boxes.started()
        # The runtime and a child it starts share one open lock; it is free once both are dead.
        box.channel.deliver(
            """
import fcntl, os, subprocess, sys
fd = os.open('held.lock', os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], pass_fds=[fd])
""",
            {},
            box.spec.workdir,
            "tok",
        )
        got = box.channel.collect(time.monotonic() + RUN_TIMEOUT_S, 1 << 20, _no_calls)
        assert got.exit_code == 0, got.stderr
        assert not _lock_within(lock, 0.2), "the box's processes should still hold the lock"
        contract_backend.kill(box.ref)
        assert contract_backend.wait(box.ref, 10.0) is not None
        assert _lock_within(lock, 10.0), "a process of the box survived kill()"

    def test_wait_reports_the_exit_code_of_a_box_that_ended_without_reporting(
        self, boxes: Boxes, contract_backend: Backend
    ) -> None:
        box = boxes.started()
        box.channel.deliver("import os; os._exit(5)", {}, box.spec.workdir, "tok")
        got = box.channel.collect(time.monotonic() + RUN_TIMEOUT_S, 1 << 20, _no_calls)
        assert got.exit_code is None and not got.timed_out
        info = contract_backend.wait(box.ref, 10.0)
        assert info is not None and info.exit_code == 5

    def test_remove_is_idempotent_and_forgets_the_box(
        self, boxes: Boxes, contract_backend: Backend
    ) -> None:
        box = boxes.started()
        contract_backend.remove(box.ref)
        contract_backend.remove(box.ref)
        contract_backend.kill(box.ref)
        with pytest.raises(NotFoundError):
            contract_backend.wait(box.ref, 1.0)
        assert box.ref.id not in _ids(contract_backend, {LABEL_CONTROLLER: boxes.controller})

    # -- reaping by labels -----------------------------------------------------------------

    def test_list_managed_finds_exactly_the_boxes_with_the_given_labels(
        self, boxes: Boxes, contract_backend: Backend
    ) -> None:
        a1, a2 = boxes.create(session="a"), boxes.started(session="a")
        b = boxes.create(session="b")
        mine = {LABEL_MANAGED: "1", LABEL_CONTROLLER: boxes.controller}
        assert _ids(contract_backend, {**mine, LABEL_SESSION: "a"}) == {a1.ref.id, a2.ref.id}
        assert _ids(contract_backend, mine) == {a1.ref.id, a2.ref.id, b.ref.id}
        assert _ids(contract_backend, {**mine, LABEL_SESSION: "nobody"}) == set()
        for summary in contract_backend.list_managed(mine):
            made = next(x for x in (a1, a2, b) if x.ref.id == summary.ref.id)
            assert dict(summary.labels).items() >= dict(made.spec.labels).items()
        for summary in contract_backend.list_managed(mine):
            contract_backend.remove(summary.ref)
        assert _ids(contract_backend, mine) == set()

    # -- errors ----------------------------------------------------------------------------

    def test_wait_on_an_unknown_box_raises_not_found(self, contract_backend: Backend) -> None:
        with pytest.raises(NotFoundError):
            contract_backend.wait(_unknown_ref(), 1.0)

    def test_kill_and_remove_of_an_unknown_box_are_fine(self, contract_backend: Backend) -> None:
        ref = _unknown_ref()
        contract_backend.kill(ref)
        contract_backend.remove(ref)

    def test_start_of_an_unknown_box_raises_a_sandbox_error(
        self, contract_backend: Backend
    ) -> None:
        with pytest.raises((NotFoundError, BackendError)):
            contract_backend.start(_unknown_ref())

    def test_create_with_an_unknown_image_raises_not_found_or_backend_error(
        self, boxes: Boxes
    ) -> None:
        with pytest.raises((NotFoundError, BackendError)) as caught:
            boxes.create(image=f"sbx-no-such-image:{secrets.token_hex(4)}")
        assert isinstance(caught.value, SandboxError)
        assert boxes.made == []

    # -- posture seen from inside ----------------------------------------------------------

    def test_the_spec_env_reaches_the_code(self, boxes: Boxes, contract_backend: Backend) -> None:
        if "env" not in contract_backend.enforced:
            pytest.skip("this backend does not claim to pass the spec's env")
        got = boxes.probe(
            "import json, os; print(json.dumps({'v': os.environ.get('SBX_CONTRACT_ENV')}))",
            env={"SBX_CONTRACT_ENV": "from the spec"},
        )
        assert got == {"v": "from the spec"}

    def test_claimed_rlimits_are_seen_from_inside(
        self, boxes: Boxes, contract_backend: Backend
    ) -> None:
        claimed = contract_backend.enforced & {"nofile", "fsize_bytes"}
        if not claimed:
            pytest.skip("this backend claims no rlimits")
        # Not the defaults, so a limit that merely happens to match cannot pass.
        got = boxes.probe(
            """
import json, resource
print(json.dumps({name: resource.getrlimit(getattr(resource, 'RLIMIT_' + name))
                  for name in ('NOFILE', 'FSIZE', 'CORE')}))
""",
            nofile=203,
            fsize_bytes=3 * MiB,
        )
        if "nofile" in claimed:
            assert got["NOFILE"] == [203, 203]
        if "fsize_bytes" in claimed:
            assert got["FSIZE"] == [3 * MiB, 3 * MiB]
        assert got["CORE"] == [0, 0]
