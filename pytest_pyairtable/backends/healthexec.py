"""A container's healthcheck, run by us inside the container at our own cadence.

The engine runs a healthcheck first one ``interval`` after the container starts, then
every ``interval``; compose then polls the engine's verdict. A service ready in 0.5 s
is seen after 1-2 s. We run the same test (the container's effective healthcheck: the
compose file's, else the image's) through the Engine API, as the engine would: as the
container's user, in its environment and working directory, ``CMD-SHELL`` through the
container's shell.

Each exec costs the engine a runtime process (~60 ms). So the test runs as a child of
one shell kept open in the container for the whole wait (one exec): an attempt then
costs what the test itself costs (~1 ms for ``sh -c``, ~10 ms for curl). A container
without a shell gets one exec per attempt, at most every ``EXEC_GAP``. The engine's own
verdict, from the event stream, counts too: 'healthy' passes, 'unhealthy' ends the wait.
Where the engine gives no verdicts (Podman without systemd), the same verdict is judged
here as the engine would: ``retries`` failures in a row at its ``interval``, once
``start_period`` is over.

The test is the compose file's, as written, where it declares one (an engine may store
an exec form altered: Podman 4 splits CMD's arguments on whitespace); an image's own
healthcheck is read from the container's inspect.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..probes.checks import BaseProbe, ProbeFailed
from ..probes.waiting import Gone, PortWatch

if TYPE_CHECKING:
    from ..probes.checks import Watch
    from .containers import ContainerService

NS = 1_000_000_000
EXEC_GAP = 0.1  # between attempts that each cost an exec (no shell to keep open)
OUTPUT_KEPT = 4096  # as much of a test's output as the engine keeps


@dataclass(frozen=True)
class HealthTest:
    """A container's effective healthcheck, as the engine holds it (Config.Healthcheck)."""

    test: tuple[str, ...]  # ("CMD", argv...) or ("CMD-SHELL", command)
    interval: float = 30.0
    timeout: float = 30.0
    start_period: float = 0.0
    start_interval: float = 5.0
    retries: int = 3

    @classmethod
    def of(
        cls, inspected: dict[str, Any], declared: Mapping[str, Any] | None = None
    ) -> HealthTest | None:
        """The container's effective healthcheck; its test as ``declared`` in the compose
        file, where it declares one, and the engine's timings (the file's or the image's)."""
        config = (inspected.get("Config") or {}).get("Healthcheck") or {}
        test = tuple(config.get("Test") or ())
        written = tuple(str(t) for t in (declared or {}).get("test") or ())
        if test[:1] == written[:1] and len(written) >= 2:
            test = written
        if len(test) < 2 or test[0] not in ("CMD", "CMD-SHELL"):
            return None  # none, NONE (disabled), or an image's inherited nothing

        def seconds(key: str, default: float) -> float:
            value = config.get(key) or 0
            return value / NS if value else default

        return cls(
            test=test,
            interval=seconds("Interval", 30.0),
            timeout=seconds("Timeout", 30.0),
            start_period=seconds("StartPeriod", 0.0),
            start_interval=seconds("StartInterval", 5.0),
            retries=int(config.get("Retries") or 3),
        )

    def argv(self, shell: list[str]) -> list[str]:
        if self.test[0] == "CMD":
            return list(self.test[1:])
        return [*shell, self.test[1]]

    def describe(self) -> str:
        shown = shlex.join(self.test[1:]) if self.test[0] == "CMD" else self.test[1]
        return f"healthcheck inside the container: {shown}"


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


class ShellSession:
    """A shell kept open inside a container, through one exec: each command runs as its
    child, with its exit code read back after a marker no output can forge."""

    def __init__(self, api: Any, cid: str, shell: str, timeout: float) -> None:
        self.marker = secrets.token_hex(8).encode()
        created = api.exec_create(cid, [shell], stdin=True, stdout=True, stderr=True)
        self.frames = _Frames(api.exec_start(created["Id"], socket=True))
        try:  # a shell that runs answers the marker; a missing one ends the stream
            self.run("true", timeout)
        except BaseException:
            self.close()
            raise

    def run(self, command: str, timeout: float) -> tuple[int, str]:
        """(exit code, output) of one command; TimeoutError or EOFError break the session."""
        line = f"{command} </dev/null 2>&1; printf '\\n{self.marker.decode()} %d\\n' $?\n"
        self.frames.send(line.encode())
        deadline = time.monotonic() + timeout
        while True:
            buffer = self.frames.buffer
            at = buffer.find(self.marker)
            end = buffer.find(b"\n", at) if at >= 0 else -1
            if end >= 0:
                output, code = buffer[: max(0, at - 1)], int(buffer[at + len(self.marker) : end])
                self.frames.buffer = buffer[end + 1 :]
                return code, output[-OUTPUT_KEPT:].decode(errors="replace")
            self.frames.more(deadline)

    def close(self) -> None:
        self.frames.close()


def exec_once(api: Any, cid: str, argv: list[str], timeout: float) -> tuple[int, str]:
    """One exec, as the engine runs a check: (exit code, output)."""
    created = api.exec_create(cid, argv, stdout=True, stderr=True)
    frames = _Frames(api.exec_start(created["Id"], socket=True))
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


class ContainerHealthcheck(BaseProbe):
    """The container's healthcheck test, run inside it at the gate's cadence."""

    def __init__(
        self,
        api: Any,
        running: ContainerService,
        test: HealthTest,
        watch: Watch | None,
        *,
        engine_verdicts: bool = True,
    ) -> None:
        self.api = api
        self.running = running
        self.test = test
        self.watch = watch
        shell = (running.inspected.get("Config") or {}).get("Shell") or ["/bin/sh", "-c"]
        self.shell = list(shell)
        self.argv = test.argv(self.shell)
        # time for the engine's verdict on the same test (its checks each get `timeout`);
        # where the engine gives none, time for one check more, so that our own verdict
        # (judged at the engine's pace) comes before the budget's end
        self.engine_verdicts = engine_verdicts
        per_check = min(test.timeout, 10.0)
        self.extra_budget = test.retries * per_check + 2.0 if engine_verdicts else per_check + 1.0
        self._session: ShellSession | None = None
        self._no_session = False
        self._last_exec = 0.0
        self._started = time.monotonic()
        self._failing: list[float] = []  # when the failures in a row at `interval` came

    def check(self) -> dict[str, Any]:
        verdict = self.running.health()
        if verdict == "healthy":
            return {"engine_health": verdict}
        if verdict == "unhealthy":
            raise Gone(
                "was reported unhealthy by the engine's healthcheck "
                f"({self.running.last_health_output() or 'no output'})",
                exited=False,
            )
        self._open_session()  # while the service starts, not once it is up
        if isinstance(self.watch, PortWatch) and not self.watch.accepts():
            # the test's own port refuses: it cannot pass, and costs the container nothing
            host, port = self.watch.address
            self._judge(f"{host}:{port} refused connections")
            raise ProbeFailed(f"{host}:{port} does not accept connections yet")
        try:
            code, output = self._attempt()
        except ProbeFailed as exc:  # it hung: a failed check, for the engine too
            self._judge(str(exc))
            raise
        if code == 0:
            self._failing.clear()
            return {"healthcheck": "passed inside the container"}
        tail = output.strip()[-200:]
        failure = f"healthcheck exit code {code}" + (f": {tail}" if tail else "")
        self._judge(failure)
        raise ProbeFailed(failure)

    def _judge(self, failure: str) -> None:
        """Where the engine gives no verdicts, give its verdict here: unhealthy after
        ``retries`` failures in a row, each at least ``interval`` after the one before,
        none counted during ``start_period`` (as the engine counts its own checks)."""
        if self.engine_verdicts:
            return
        now = time.monotonic()
        if now - self._started < self.test.start_period:
            return
        if not self._failing or now - self._failing[-1] >= self.test.interval:
            self._failing.append(now)
        if len(self._failing) >= max(1, self.test.retries):
            raise Gone(
                f"failed its healthcheck {len(self._failing)} times in a row, "
                f"{self.test.interval:g}s apart, which makes it unhealthy (judged by "
                f"pyairtable as the engine would; this engine runs no healthchecks): {failure}",
                exited=False,
            )

    def _open_session(self) -> None:
        if self._session is not None or self._no_session:
            return
        try:
            self._session = ShellSession(
                self.api, self.running.cid, self.shell[0], min(self.test.timeout, 10.0)
            )
        except (TimeoutError, EOFError, OSError):
            self._no_session = True  # no shell to keep open: one exec per attempt
        except Exception as exc:  # the engine refused (container not running, gone)
            raise ProbeFailed(f"healthcheck could not run: {str(exc)[:200]}") from None

    def _attempt(self) -> tuple[int, str]:
        timeout = self.test.timeout
        self._open_session()
        if self._session is not None:
            try:
                return self._session.run(shlex.join(self.argv), timeout)
            except (TimeoutError, EOFError, OSError):
                # a test hung (its shell is given up: the next attempt opens another),
                # or the container stopped
                self._session.close()
                self._session = None
                raise ProbeFailed(f"healthcheck did not finish within {timeout:g}s") from None
        pause = self._last_exec + EXEC_GAP - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        self._last_exec = time.monotonic()
        try:
            return exec_once(self.api, self.running.cid, self.argv, timeout)
        except TimeoutError:
            raise ProbeFailed(f"healthcheck did not finish within {timeout:g}s") from None
        except Exception as exc:
            raise ProbeFailed(f"healthcheck could not run: {str(exc)[:200]}") from None

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
