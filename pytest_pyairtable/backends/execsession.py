"""A command run inside a container through the Engine API, as the engine runs a
healthcheck: one exec per command, or one shell kept open in the container (one exec
for a whole wait) whose children the commands are, each exit code read back after a
marker no output can forge. Each exec costs the engine a runtime process (~60 ms); a
command in the kept shell costs only what it costs itself. The kept shell also starts
commands in the background, several at once, each exit code read back with its tag."""

from __future__ import annotations

import contextlib
import re
import secrets
import select
import struct
import time
from typing import Any

OUTPUT_KEPT = 4096  # as much of a test's output as the engine keeps
FRAME_WAIT = 5.0  # for the rest of a frame the engine has begun to send
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

    def more_within(self, wait: float) -> bool:
        """Append the next frame if one begins within ``wait``; False if none did (a
        timeout inside ``more`` would lose a frame's first bytes: the stream is read
        only once it has something)."""
        pending = getattr(self.sock, "pending", None)  # a TLS socket's decrypted bytes
        if not (pending is not None and pending() > 0):
            poller = select.poll()  # (select() refuses descriptors past 1023)
            poller.register(self.sock, select.POLLIN)
            if not poller.poll(max(0, round(wait * 1000))):
                return False
        self.more(time.monotonic() + FRAME_WAIT)
        return True

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
        self._tags = 0
        self.launched: set[int] = set()  # background commands whose end is not yet read
        self._unreaped = False  # launched since the last foreground command (dash reaps
        # ended background children only when it runs one, or `wait`)
        created = api.exec_create(cid, [shell], stdin=True, stdout=True, stderr=True)
        self.frames = _Frames(_exec_socket(api, created["Id"]))
        try:  # a shell that runs answers the marker; a missing one ends the stream
            self.run("true", timeout)
        except BaseException:
            self.close()
            raise

    def run(self, command: str, timeout: float) -> tuple[int, str]:
        """(exit code, output) of one command; TimeoutError or EOFError break the session."""
        self._settle(timeout)
        self._unreaped = False
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

    def launch(self, command: str) -> int:
        """Start ``command`` (one program, as ``run``'s) in the background, its output
        discarded; its tag, which ``ended`` gives back with its exit code."""
        self._tags += 1
        tag, mark = self._tags, self.marker.decode()
        line = f"{{ {command} </dev/null >/dev/null 2>&1; printf '{mark}@{tag} %d\\n' $?; }} &\n"
        self.frames.send(line.encode())
        self.launched.add(tag)
        self._unreaped = True
        self.children_cpu = None  # the next ``times`` holds this one's CPU too
        return tag

    def ended(self, wait: float) -> dict[int, int]:
        """{tag: exit code} of the launched commands that have ended, waiting up to
        ``wait`` for one when none has; EOFError when the shell is gone, TimeoutError
        when a frame begun does not end."""
        deadline = time.monotonic() + wait
        while True:
            codes = self._ends()
            if codes or not self.frames.more_within(deadline - time.monotonic()):
                return codes

    def _ends(self) -> dict[int, int]:
        codes: dict[int, int] = {}
        head = self.marker + b"@"
        while (at := self.frames.buffer.find(head)) >= 0:
            end = self.frames.buffer.find(b"\n", at)
            if end < 0:
                break
            tag, _, code = self.frames.buffer[at + len(head) : end].partition(b" ")
            self.frames.buffer = self.frames.buffer[end + 1 :]  # (nothing else is written)
            with contextlib.suppress(ValueError):
                codes[int(tag)] = int(code)
                self.launched.discard(int(tag))
        return codes

    def _settle(self, timeout: float) -> None:
        """Before a command in the foreground: the launched ones end (their marker
        lines would be read as its output)."""
        deadline = time.monotonic() + timeout
        while self.launched:
            if not self.ended(deadline - time.monotonic()) and time.monotonic() >= deadline:
                raise TimeoutError

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
        """End the shell; launched commands, running or ended, are waited for by it,
        not left to the container's PID 1 (which may never reap them: zombies)."""
        if self._unreaped:
            with contextlib.suppress(OSError):
                self.frames.send(b"wait\n")
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
