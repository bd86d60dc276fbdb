"""The retry policy for readiness: first try at once, then fast exponential backoff,
and between attempts a cheap watch that calls the next attempt the moment it can pass.

Peers poll every 0.1-30 s; a service ready in 0.5 s should be seen at 0.5 s. The wait
starts at ``FIRST_WAIT`` (1 ms) and doubles up to a cap that is never above the
healthcheck's ``interval``. Once the backoff has grown, a service that becomes ready
would wait up to the cap to be seen: where the probe's port is on this machine, the
pause between attempts is spent checking, every ``WATCH_EVERY``, whether the port has
just started to accept (a TCP connect costs ~20 us, a real attempt ~1-3 ms of CPU);
when it has, the next attempt runs at once and the backoff starts again from 1 ms.
A probe whose attempts are costly asks for longer pauses (``rest``: see healthexec.py).
``sleep`` is injectable so tests of the policy never sleep.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .checks import Probe, ProbeFailed, Watch

if TYPE_CHECKING:
    from tenacity import RetryCallState

FIRST_WAIT = 0.001
MAX_WAIT = 0.05
WATCH_EVERY = 0.001
_DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432, "redis": 6379}


class Gone(Exception):
    """The process being probed is no longer running; waiting longer cannot help."""

    def __init__(self, reason: str, *, exited: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exited = exited  # False: still running, but judged failed (engine: unhealthy)


@dataclass
class WaitOutcome:
    details: dict[str, Any]
    attempts: int
    last_error: str


class PortWatch:
    """Whether a TCP port on this machine has just started to accept connections."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._open = False

    def accepts(self) -> bool:
        with socket.socket(self.family, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.05)  # loopback accepts or refuses at once; a full backlog waits
            return sock.connect_ex(self.address) == 0

    def changed(self) -> bool:
        was, self._open = self._open, self.accepts()
        return self._open and not was


def port_watch(kind: str, target: str) -> PortWatch | None:
    """A watch for a probe's port when it is on this machine (loopback), else None:
    polling a remote host every millisecond would cost round trips, not microseconds."""
    if kind == "tcp":
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
    elif kind in ("http", "postgres", "redis") and "://" in target:
        parts = urlsplit(target)
        try:
            number = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return None
        port = str(number or "")
        host = parts.hostname or ""
    else:
        return None
    if not port.isdigit() or not _loopback(host):
        return None
    return PortWatch(("127.0.0.1" if host == "localhost" else host, int(port)))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Backoff:
    """Doubling pauses from FIRST_WAIT up to ``cap``, restarted when the watch fires."""

    def __init__(self, cap: float) -> None:
        self.cap = max(cap, FIRST_WAIT)
        self.step = 0

    def __call__(self, state: RetryCallState) -> float:
        pause = min(self.cap, FIRST_WAIT * 2.0 ** min(self.step, 60))  # 2.0**1024 overflows
        self.step += 1
        return pause


def wait_ready(
    probe: Probe,
    *,
    budget: float,
    cap: float = MAX_WAIT,
    alive: Callable[[], str | None] = lambda: None,
    sleep: Callable[[float], None] = time.sleep,
    on_attempt: Callable[[int, str | None], None] | None = None,
    watch: Watch | None = None,
    rest: Callable[[], float] | None = None,
) -> WaitOutcome:
    """Repeat ``probe.check`` until it passes; raise TimeoutError or Gone.

    ``alive`` returns None while the process runs, else why it is not running, so a
    crashed service fails at once instead of at the timeout. ``watch``, checked every
    ``WATCH_EVERY`` during each pause, ends the pause early when it changes. ``rest``
    (the probe's) lengthens a pause to what the last attempt asks for its cost.
    """
    errors: list[str] = []
    backoff = _Backoff(cap)

    def attempt() -> dict[str, Any]:
        reason = alive()
        if reason is not None:
            raise Gone(reason)
        try:
            details = probe.check()
        except ProbeFailed as exc:
            errors.append(str(exc))
            if on_attempt:
                on_attempt(len(errors), str(exc))
            raise
        if on_attempt:
            on_attempt(len(errors) + 1, None)
        return details

    def pause(seconds: float) -> None:
        if rest is not None:
            seconds = max(seconds, rest())
        if watch is None:
            sleep(seconds)
            return
        slices = max(1, math.ceil(seconds / WATCH_EVERY - 1e-9))
        for i in range(slices):
            if watch.changed():
                backoff.step = 0  # it just changed: look closely again
                return
            sleep(min(WATCH_EVERY, seconds - i * WATCH_EVERY))

    def give_up(state: RetryCallState) -> dict[str, Any]:
        raise TimeoutError(errors[-1] if errors else "no attempt finished")

    # Imported here, on the service's own thread once it was launched: not on the way to
    # the first launch (tenacity's import is ~6 ms).
    from tenacity import Retrying, retry_if_exception_type, stop_after_delay

    retrying = Retrying(
        stop=stop_after_delay(max(budget, 0.0)),
        wait=backoff,
        retry=retry_if_exception_type(ProbeFailed),
        sleep=pause,
        retry_error_callback=give_up,
    )
    details = retrying(attempt)
    return WaitOutcome(details, len(errors) + 1, errors[-1] if errors else "")
