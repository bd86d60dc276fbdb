"""A command run inside a container through the Engine API, as the engine runs a
healthcheck: one exec per command, or one shell kept open in the container (one exec
for a whole wait) whose children the commands are, each exit code read back after a
marker no output can forge. Each exec costs the engine a runtime process (~60 ms); a
command in the kept shell costs only what it costs itself."""

from __future__ import annotations

import contextlib
import re
import secrets
import struct
import time
from typing import Any

OUTPUT_KEPT = 4096  # as much of a test's output as the engine keeps
_TIMES = re.compile(r"(\d+)m(\d+(?:\.\d*)?)s")


class _Frames:
    """The engine's multiplexed stream of an exec without a TTY: 8-byte headers, then
    the frame; read with a deadline, which the SDK's own helpers do not have."""

    def __init__(self, sock: Any) -> None:
        self.io = sock  # the SDK's file object over the socket: closed too, or the fd stays
        self.sock = getattr(sock, "_sock", sock)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _exactly(self, n: int, deadline: float) -> bytes:
        data = b""
        while len(data) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(n - len(data))
            except (TimeoutError, BlockingIOError):
                raise TimeoutError from None
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def more(self, deadline: float) -> None:
        """Append the next frame's payload to ``buffer``; EOFError at the end."""
        _, size = struct.unpack(">BxxxL", self._exactly(8, deadline))
        self.buffer += self._exactly(size, deadline)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(2)
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            self.io.close()


def _exec_socket(api: Any, exec_id: str) -> Any:
    """The exec's socket; an engine's refusal raised with its response closed (the SDK
    raises before it would hand the connection over)."""
    try:
        return api.exec_start(exec_id, socket=True)
    except Exception as exc:
        with contextlib.suppress(Exception):
            exc.response.close()  # type: ignore[attr-defined]
        raise


class ShellSession:
    """A shell kept open inside a container, through one exec: each command runs as its
    child, with its exit code read back after a marker no output can forge, and the CPU
    time it took from the shell's ``times`` (a POSIX built-in: no process of its own)."""

    def __init__(self, api: Any, cid: str, shell: str, timeout: float) -> None:
        self.marker = secrets.token_hex(8).encode()
        self.children_cpu: float | None = None  # the shell's children's CPU so far
        self.last_cpu: float | None = None  # what the last command took, where known
        created = api.exec_create(cid, [shell], stdin=True, stdout=True, stderr=True)
        self.frames = _Frames(_exec_socket(api, created["Id"]))
        try:  # a shell that runs answers the marker; a missing one ends the stream
            self.run("true", timeout)
        except BaseException:
            self.close()
            raise

    def run(self, command: str, timeout: float) -> tuple[int, str]:
        """(exit code, output) of one command; TimeoutError or EOFError break the session."""
        mark = self.marker.decode()
        line = (
            f"{command} </dev/null 2>&1; _pyairtable_rc=$?; printf '\\n{mark}\\n'; "
            f"times 2>&1; printf '{mark} %d\\n' $_pyairtable_rc\n"
        )
        self.frames.send(line.encode())
        deadline = time.monotonic() + timeout
        while True:
            buffer = self.frames.buffer
            at = buffer.find(self.marker + b" ")  # the last line: the exit code
            end = buffer.find(b"\n", at) if at >= 0 else -1
            if end >= 0:
                first = buffer.find(self.marker)
                output = buffer[: max(0, first - 1)]
                code = int(buffer[at + len(self.marker) + 1 : end])
                self._count_cpu(buffer[first + len(self.marker) : at])
                self.frames.buffer = buffer[end + 1 :]
                return code, output[-OUTPUT_KEPT:].decode(errors="replace")
            self.frames.more(deadline)

    def _count_cpu(self, times: bytes) -> None:
        """``times`` prints the shell's user and system time, then its children's."""
        found = _TIMES.findall(times.decode(errors="replace"))
        if len(found) != 4:
            self.last_cpu = self.children_cpu = None  # a shell without it: wall time only
            return
        children = sum(int(m) * 60 + float(s) for m, s in found[2:])
        was, self.children_cpu = self.children_cpu, children
        self.last_cpu = None if was is None else max(0.0, children - was)

    def close(self) -> None:
        self.frames.close()


def exec_once(api: Any, cid: str, argv: list[str], timeout: float) -> tuple[int, str]:
    """One exec, as the engine runs a check: (exit code, output)."""
    created = api.exec_create(cid, argv, stdout=True, stderr=True)
    frames = _Frames(_exec_socket(api, created["Id"]))
    deadline = time.monotonic() + timeout
    try:
        with contextlib.suppress(EOFError):
            while len(frames.buffer) < 64 * OUTPUT_KEPT:
                frames.more(deadline)
    finally:
        frames.close()
    code = api.exec_inspect(created["Id"]).get("ExitCode")
    output = frames.buffer[-OUTPUT_KEPT:].decode(errors="replace")
    return (-1 if code is None else int(code)), output
