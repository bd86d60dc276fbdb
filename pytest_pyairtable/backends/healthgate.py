"""The cheap sign that gates a container's healthcheck: the port its test targets.

A healthcheck that fetches ``http://localhost:8000/health`` (curl, wget, ``python3 -c
"urllib.request.urlopen(...)"``, node's fetch) or opens bash's ``/dev/tcp/127.0.0.1/8000``
cannot pass while nothing in the container listens on port 8000. Asking costs
microseconds on the host, while an attempt of the test itself costs the container from
~1 ms (a shell built-in) to 30-60 ms of CPU (an interpreter's start-up), taken from the
very services that are starting. So the test runs once the port takes connections (or
just ahead of the opening its earlier launches foresee: readyforecast.py):

- on the host's network (``network_mode: host``), a connection to the port from here,
  until it has once been taken (each is a connection the starting service must accept);
- on a network of its own, the listening sockets of the container's network namespace,
  read from ``/proc/<its pid>/net/tcp`` (a published port's proxy would accept for a
  container that listens on nothing), as often as that read's own cost allows;
- when the test targets several ports, another host, or none that can be read, no gate
  (its cost alone paces the attempts, healthexec.py).
"""

from __future__ import annotations

import ipaddress
import re
import time
from urllib.parse import urlsplit

from ..probes.waiting import PortWatch
from .sockets import listening_in

_URL = re.compile(r"\b(https?)://([^/\s'\"\\|;&?#]+)")
_DEV_TCP = re.compile(r"/dev/tcp/([^/\s'\"\\]+)/(\d+)")
_DEFAULT_PORT = {"http": 80, "https": 443}
LOOK_PER_COST = 10.0  # a look at a namespace's table, at most a tenth of the time


def check_target(test: tuple[str, ...], own_names: tuple[str, ...] = ()) -> tuple[str, int] | None:
    """(address, port) inside the container that a healthcheck's test (``("CMD", argv...)``
    or ``("CMD-SHELL", command)``) connects to, when it names exactly one such port on
    the container itself (a loopback address, or one of ``own_names``); else None."""
    text = test[1] if test[0] == "CMD-SHELL" else " ".join(test[1:])
    found: set[tuple[str, int]] = set()
    for scheme, netloc in _URL.findall(text):
        try:
            parts = urlsplit(f"{scheme}://{netloc}")
            port = parts.port or _DEFAULT_PORT[scheme]
        except ValueError:
            return None  # a URL we cannot read: no gate rather than a wrong one
        found.add((parts.hostname or "", port))
    for host, port in _DEV_TCP.findall(text):
        found.add((host.strip("[]"), int(port)))
    if len(found) != 1:
        return None  # none, or several (`curl a || curl b` passes with either)
    ((host, port),) = found
    if not 0 < port < 65536:
        return None
    address = _own_address(host, own_names)
    return None if address is None else (address, port)


def _own_address(host: str, own_names: tuple[str, ...]) -> str | None:
    """The address a connection to ``host`` from inside the container reaches it on."""
    if host in ("localhost", *own_names):
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_unspecified:  # 0.0.0.0 connects to the machine itself
        return "127.0.0.1" if address.version == 4 else "::1"
    return str(address) if address.is_loopback else None


class PortGate(PortWatch):
    """A port that, once seen taking connections, is not looked at again between
    attempts: each look is a connection the starting service must accept (and, for a
    threaded server, a thread it starts); an attempt's own look still checks it."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address)
        self.opened_at: float | None = None  # when it was first seen to accept
        # a foreseen step due then (the shell's opening, then the runs: readyforecast.py):
        # a pause ends
        self.due: float | None = None

    def changed(self) -> bool:
        if self.due is not None and time.monotonic() >= self.due:
            self.due = None
            return True
        if self._open:
            return False
        if super().changed():
            self.opened_at = time.monotonic()
            return True
        return False

    def open_now(self) -> bool:
        """An attempt's own look: once it has seen the port open, so has the watch (its
        first look between attempts would call that a change, and cut a pause short)."""
        if not self._open and self.accepts():
            self._open, self.opened_at = True, time.monotonic()
        return self._open


class ListenGate(PortGate):
    """Whether a process in another network namespace (a container's, through one of
    its processes) listens on a port, from the kernel's table of that namespace. Making
    the table walks every socket of the machine (~1-70 ms), so looks are paced by their
    own cost, as the checks are."""

    def __init__(self, address: tuple[str, int], pid: int) -> None:
        super().__init__(address)
        self.pid = pid
        self._seen = False
        self._next_look = 0.0

    def accepts(self) -> bool:
        started = time.monotonic()
        if started < self._next_look:
            return self._seen
        host, port = self.address
        self._seen = listening_in(self.pid, port, host)
        ended = time.monotonic()
        self._next_look = ended + LOOK_PER_COST * (ended - started)
        return self._seen


def gate(
    test: tuple[str, ...], *, host_network: bool, pid: int, own_names: tuple[str, ...] = ()
) -> PortGate | None:
    """The watch of the port ``test`` targets (see the module's docstring), or None."""
    target = check_target(test, own_names)
    if target is None:
        return None
    if host_network:
        return PortGate(target)
    return ListenGate(target, pid) if pid > 0 else None
