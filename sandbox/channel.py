"""The per-run Unix socket: the only door between the controller and one sandbox container.

The controller listens; the container's runtime dials in three times (control, stdout,
stderr) while the container warms up. Once all three are in, the listener is closed and its
path unlinked, so code that runs later cannot open more connections. Everything read from
the container is bounded here: header sizes, output bytes per stream, and time. The frames
themselves are in sandbox/runtime/protocol.py, shared with the runtime.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from sandbox.exceptions import ContainerStartError
from sandbox.runtime import protocol
from sandbox.runtime.protocol import CONTAINER_DIR, EGRESS_SOCKET, SOCKET_NAME

__all__ = [
    "CONTAINER_DIR",
    "EGRESS_SOCKET",
    "SOCKET_NAME",
    "CallHandler",
    "Collected",
    "RunChannel",
    "response_frame",
]

_CHUNK = 64 * 1024
_MAX_OUTBOX = 8 * 1024 * 1024

CallHandler = Callable[[bytes, Callable[[bytes], None]], None]
"""Takes a call frame's body and a reply function; must not block (replies may come later,
from any thread)."""


@dataclass(frozen=True)
class Collected:
    """What came back over the channel. `exit_code` is None when the runtime never reported one."""

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    timed_out: bool
    truncated: bool
    cut: str | None = None
    """Why the run was cut off (a per-run bound broken), if it was."""


class _ByteRate:
    """At most `limit` bytes in any one-second window (None: no limit)."""

    def __init__(self, limit: int | None) -> None:
        self._limit, self._start, self._used = limit, time.monotonic(), 0

    def take(self, n: int) -> bool:
        if self._limit is None:
            return True
        now = time.monotonic()
        if now - self._start >= 1.0:
            self._start, self._used = now, 0
        self._used += n
        return self._used <= self._limit


@dataclass
class _Collecting:
    """What `collect` has gathered so far."""

    bufs: dict[socket.socket, bytearray]
    parser: _ControlParser
    rate: _ByteRate
    truncated: bool = False
    exit_code: int | None = None
    timed_out: bool = False
    ctl_open: bool = True
    cut: str | None = None


class RunChannel:
    """One run's socket folder, listener and, once connected, its three streams."""

    def __init__(self, runs_dir: Path, uid: int, gid: int) -> None:
        # An opaque random folder name: the mount source seen in /proc/self/mountinfo names no tenant.
        self.dir = runs_dir / secrets.token_hex(16)
        self.dir.mkdir(mode=0o711)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = self.dir / SOCKET_NAME
        # Bind through a short /proc path: a socket path over 107 bytes cannot be bound
        # directly, and data directories can be deep.
        dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._listener.bind(f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}")
        finally:
            os.close(dir_fd)
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
        # Replies to tool calls are queued here and written by the collect loop, never by the
        # thread that produced them: sandbox code that stops reading cannot block anyone else.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._outbox = bytearray()
        self._outbox_lock = threading.Lock()
        self._closed = False
        self._max_call_bytes = protocol.DEFAULT_MAX_CALL_BYTES

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
                name = protocol.STREAM_TAGS.get(tag)
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

    def deliver(
        self,
        code: str,
        env: Mapping[str, str],
        cwd: str,
        token: str = "",
        *,
        max_call_bytes: int = protocol.DEFAULT_MAX_CALL_BYTES,
    ) -> None:
        """Hand the runtime its code, and the tool-call cap it should apply before sending.

        `max_call_bytes` is also what `collect` enforces unless it is given another cap.

        Raises:
            ContainerStartError: the container is gone (its end of the channel is closed).
        """
        if self._ctl is None:
            raise ContainerStartError("channel is not connected")
        frame = protocol.encode_run(code, env, cwd, token, {"max_call_bytes": max_call_bytes})
        self._max_call_bytes = max_call_bytes
        self._ctl.setblocking(True)
        self._ctl.settimeout(5.0)
        try:
            self._ctl.sendall(frame)
        except OSError as exc:
            raise ContainerStartError(f"sandbox container is gone: {exc}") from exc
        finally:
            self._ctl.setblocking(False)

    def collect(
        self,
        deadline: float,
        cap: int,
        on_call: CallHandler,
        max_call_bytes: int | None = None,
        on_output: Callable[[str, bytes], None] | None = None,
        *,
        stop: Callable[[], str | None] | None = None,
        max_control_bytes_per_s: int | None = None,
    ) -> Collected:
        """Read output and serve tool calls until the runtime reports an exit, the container
        dies, the deadline passes, or the run is cut off.

        Each stream keeps at most `cap` bytes; the rest is read and dropped, so a flood costs
        the host no memory and the code keeps running as it would have. A malformed control
        frame, or a call body over `max_call_bytes` (default: the cap given to `deliver`),
        closes the control stream (the run can then only end by exiting or by the deadline).
        The run is cut off (`Collected.cut` says why; the caller kills the box) when `stop()`
        names a reason, or when more than `max_control_bytes_per_s` arrive on control in a
        second.
        """
        ctl, out, err = self._streams()
        state = _Collecting(
            {out: bytearray(), err: bytearray()},
            _ControlParser(self._max_call_bytes if max_call_bytes is None else max_call_bytes),
            _ByteRate(max_control_bytes_per_s),
        )
        scratch = bytearray(_CHUNK)
        with selectors.DefaultSelector() as sel:
            for sock in (ctl, out, err, self._wake_r):
                sel.register(sock, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    state.timed_out = True
                    break
                for key, events in sel.select(remaining):
                    sock = cast(socket.socket, key.fileobj)
                    if sock is self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            sock.recv(4096)
                    elif events & selectors.EVENT_READ:
                        self._read(sock, sel, state, scratch, cap, on_call, on_output)
                state.cut = state.cut or (stop() if stop is not None else None)
                if state.cut is not None:
                    break
                if state.ctl_open:
                    self._flush(ctl, sel)
                if state.exit_code is not None:
                    # Output written before the exit report is already in our receive queues.
                    state.truncated |= self._drain(state.bufs, scratch, cap)
                    break
                if not state.ctl_open and set(sel.get_map()) <= {self._wake_r.fileno()}:
                    break
        return Collected(
            stdout=bytes(state.bufs[out]),
            stderr=bytes(state.bufs[err]),
            exit_code=state.exit_code,
            timed_out=state.timed_out,
            truncated=state.truncated,
            cut=state.cut,
        )

    def _read(
        self,
        sock: socket.socket,
        sel: selectors.BaseSelector,
        state: _Collecting,
        scratch: bytearray,
        cap: int,
        on_call: CallHandler,
        on_output: Callable[[str, bytes], None] | None,
    ) -> None:
        """Take what one readable connection has: output kept within `cap`, or control frames."""
        view = memoryview(scratch)
        try:
            n = sock.recv_into(scratch)
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if sock is self._ctl:
            if n and not state.rate.take(n):
                state.cut = "control_flood"
                return
            frames = state.parser.feed(view[:n]) if n else None
            if frames is None:
                # Closed or malformed: hang up, so the runtime cannot wait on us.
                sel.unregister(sock)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                state.ctl_open = False
                return
            for frame in frames:
                if isinstance(frame, int):
                    state.exit_code = frame
                else:
                    on_call(frame, self.post)
            return
        if n == 0:
            sel.unregister(sock)
            return
        buf = state.bufs[sock]
        before = len(buf)
        state.truncated |= _keep(buf, view[:n], cap)
        if on_output is not None and len(buf) > before:
            on_output("stdout" if sock is self._out else "stderr", bytes(buf[before:]))

    def post(self, frame: bytes) -> None:
        """Queue a reply for the runtime; callable from any thread, never blocks."""
        with self._outbox_lock:
            if self._closed or len(self._outbox) + len(frame) > _MAX_OUTBOX:
                return  # the run is over, or its code stopped reading replies
            self._outbox += frame
        self.wake()

    def wake(self) -> None:
        """Make `collect` look at its `stop()` now; callable from any thread, never blocks."""
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"!")

    def _flush(self, ctl: socket.socket, sel: selectors.BaseSelector) -> None:
        with self._outbox_lock:
            if self._outbox:
                try:
                    sent = ctl.send(self._outbox)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    sent = len(self._outbox)  # the peer is gone; drop what it will never read
                del self._outbox[:sent]
            pending = bool(self._outbox)
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
        if sel.get_key(ctl).events != want:
            sel.modify(ctl, want)

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
        with self._outbox_lock:
            self._closed = True
            self._outbox.clear()
        self._wake_r.close()
        self._wake_w.close()
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


class _ControlParser:
    """Splits the runtime's control stream into EXIT statuses (int) and CALL bodies (bytes)."""

    def __init__(self, max_call_bytes: int) -> None:
        self._buf = bytearray()
        self._max = max_call_bytes

    def feed(self, data: memoryview) -> list[int | bytes] | None:
        """Frames completed by `data`; None once the stream is malformed (stop reading it)."""
        self._buf += data
        frames: list[int | bytes] = []
        limit = protocol.MAX_CONTROL_LINE
        while self._buf:
            nl = self._buf.find(b"\n", 0, limit)
            if nl < 0:
                return frames if len(self._buf) < limit else None
            try:
                verb, value = protocol.parse_control_line(bytes(self._buf[: nl + 1]))
            except protocol.ProtocolError:
                return None
            if verb == protocol.EXIT:
                frames.append(value)
                del self._buf[: nl + 1]
                continue
            if value > self._max:
                return None
            end = nl + 1 + value
            if len(self._buf) < end:
                break
            frames.append(bytes(self._buf[nl + 1 : end]))
            del self._buf[:end]
        return frames


def response_frame(call_id: object, payload: dict[str, object]) -> bytes:
    """A reply to one tool call, as the runtime reads it (protocol.encode_response)."""
    return protocol.encode_response(call_id, payload)
