"""The per-run Unix socket: the only door between the controller and one sandbox container.

The controller listens; the container's runtime dials in three times (control, stdout,
stderr) while the container warms up. Once all three are in, the listener is closed and its
path unlinked, so code that runs later cannot open more connections. Everything read from
the container is bounded here: header sizes, output bytes per stream, and time.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import selectors
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from sandbox.exceptions import ContainerStartError

SOCKET_NAME = "sbx.sock"
CONTAINER_DIR = "/run/sbx"
_TAGS = {b"C": "ctl", b"O": "out", b"E": "err"}
_EXIT_LINE = re.compile(rb"EXIT (-?\d{1,4})\n")
_MAX_EXIT_LINE = 16
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Collected:
    """What came back over the channel. `exit_code` is None when the runtime never reported one."""

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    timed_out: bool
    truncated: bool


class RunChannel:
    """One run's socket folder, listener and, once connected, its three streams."""

    def __init__(self, runs_dir: Path, uid: int, gid: int) -> None:
        # An opaque random folder name: the mount source seen in /proc/self/mountinfo names no tenant.
        self.dir = runs_dir / secrets.token_hex(16)
        self.dir.mkdir(mode=0o711)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = self.dir / SOCKET_NAME
        self._listener.bind(str(path))
        try:
            os.chown(path, uid, gid)
            os.chmod(path, 0o600)
        except PermissionError:
            # A controller that is not root cannot give the socket away; let any local uid dial.
            os.chmod(path, 0o666)  # noqa: S103 - the folder name is a 128-bit secret
        self._listener.listen(4)
        self._ctl: socket.socket | None = None
        self._out: socket.socket | None = None
        self._err: socket.socket | None = None

    def accept_runtime(self, deadline: float) -> None:
        """Wait for the runtime's three connections, then close the door behind them.

        Raises:
            ContainerStartError: the runtime did not dial in, or dialled in wrongly, in time.
        """
        conns: dict[str, socket.socket] = {}
        try:
            while len(conns) < 3:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ContainerStartError("sandbox runtime did not connect in time")
                self._listener.settimeout(remaining)
                conn, _ = self._listener.accept()
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                tag = conn.recv(1)
                name = _TAGS.get(tag)
                if name is None or name in conns:
                    conn.close()
                    raise ContainerStartError("sandbox runtime sent a bad handshake")
                conns[name] = conn
        except (TimeoutError, OSError) as exc:
            for conn in conns.values():
                conn.close()
            raise ContainerStartError(f"sandbox runtime did not connect: {exc}") from exc
        finally:
            self._close_listener()
        self._ctl, self._out, self._err = conns["ctl"], conns["out"], conns["err"]
        for conn in conns.values():
            conn.setblocking(False)

    def deliver(self, code: str, env: dict[str, str], cwd: str) -> None:
        """Hand the runtime its code.

        Raises:
            ContainerStartError: the container is gone (its end of the channel is closed).
        """
        if self._ctl is None:
            raise ContainerStartError("channel is not connected")
        code_b = code.encode("utf-8")
        env_b = "\0".join(f"{k}={v}" for k, v in env.items()).encode("utf-8")
        cwd_b = cwd.encode("utf-8")
        frame = b"RUN %d %d %d\n" % (len(code_b), len(env_b), len(cwd_b)) + code_b + env_b + cwd_b
        self._ctl.setblocking(True)
        self._ctl.settimeout(5.0)
        try:
            self._ctl.sendall(frame)
        except OSError as exc:
            raise ContainerStartError(f"sandbox container is gone: {exc}") from exc
        finally:
            self._ctl.setblocking(False)

    def collect(self, deadline: float, cap: int) -> Collected:
        """Read output until the runtime reports an exit, the container dies or the deadline passes.

        Each stream keeps at most `cap` bytes; the rest is read and dropped, so a flood costs
        the host no memory and the code keeps running as it would have.
        """
        ctl, out, err = self._streams()
        bufs = {out: bytearray(), err: bytearray()}
        truncated = False
        scratch = bytearray(_CHUNK)
        view = memoryview(scratch)
        ctl_buf = bytearray()
        exit_code: int | None = None
        ctl_open = True
        timed_out = False
        with selectors.DefaultSelector() as sel:
            for sock in (ctl, out, err):
                sel.register(sock, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                if not sel.get_map():
                    break
                for key, _ in sel.select(remaining):
                    sock = cast(socket.socket, key.fileobj)
                    try:
                        n = sock.recv_into(scratch)
                    except BlockingIOError:
                        continue
                    except OSError:
                        n = 0
                    if sock is ctl:
                        if n == 0:
                            sel.unregister(sock)
                            ctl_open = False
                            continue
                        ctl_buf += view[:n]
                        exit_code, ctl_open = _parse_exit(ctl_buf)
                        if not ctl_open:
                            sel.unregister(sock)
                        continue
                    if n == 0:
                        sel.unregister(sock)
                        continue
                    truncated |= _keep(bufs[sock], view[:n], cap)
                if exit_code is not None:
                    # Output written before the exit report is already in our receive queues.
                    truncated |= self._drain(bufs, scratch, cap)
                    break
                if not ctl_open and len(sel.get_map()) == 0:
                    break
        return Collected(
            stdout=bytes(bufs[out]),
            stderr=bytes(bufs[err]),
            exit_code=exit_code,
            timed_out=timed_out,
            truncated=truncated,
        )

    def drain_after_kill(self, cap: int, stdout: bytes, stderr: bytes) -> tuple[bytes, bytes, bool]:
        """Pick up output still queued after the container was killed."""
        _, out, err = self._streams()
        bufs = {out: bytearray(stdout), err: bytearray(stderr)}
        truncated = self._drain(bufs, bytearray(_CHUNK), cap)
        return bytes(bufs[out]), bytes(bufs[err]), truncated

    def _streams(self) -> tuple[socket.socket, socket.socket, socket.socket]:
        if self._ctl is None or self._out is None or self._err is None:
            raise ContainerStartError("channel is not connected")
        return self._ctl, self._out, self._err

    def _drain(self, bufs: dict[socket.socket, bytearray], scratch: bytearray, cap: int) -> bool:
        truncated = False
        view = memoryview(scratch)
        # Bounded: a background process may keep writing; we take what is queued now and stop.
        budget = 4 * cap + 4 * _CHUNK
        for sock, buf in bufs.items():
            taken = 0
            while taken < budget:
                try:
                    n = sock.recv_into(scratch)
                except (BlockingIOError, OSError):
                    break
                if n == 0:
                    break
                taken += n
                truncated |= _keep(buf, view[:n], cap)
        return truncated

    def _close_listener(self) -> None:
        self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / SOCKET_NAME).unlink()

    def close(self) -> None:
        """Close every connection (the runtime then exits) and remove the socket folder."""
        self._close_listener()
        for sock in (self._ctl, self._out, self._err):
            if sock is not None:
                sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _keep(buf: bytearray, data: memoryview, cap: int) -> bool:
    room = cap - len(buf)
    if room >= len(data):
        buf += data
        return False
    if room > 0:
        buf += data[:room]
    return True


def _parse_exit(buf: bytearray) -> tuple[int | None, bool]:
    """Parse the runtime's exit report; anything malformed closes the control stream."""
    if b"\n" not in buf:
        return None, len(buf) <= _MAX_EXIT_LINE
    match = _EXIT_LINE.fullmatch(bytes(buf))
    if match is None:
        return None, False
    return int(match.group(1)), True
