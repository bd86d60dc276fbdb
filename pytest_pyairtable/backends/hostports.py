"""The host ports a local service listens on: whether they are free before it starts,
who holds one that is taken, and whether what answered its probe is its own.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from ..model.spec import ServiceSpec
from ..support.errors import PrerequisiteError
from . import sockets
from .base import HeldPorts


def service_ports(svc: ServiceSpec) -> set[int]:
    """Host ports a service will listen on: published ports and its probe's port."""
    from urllib.parse import urlsplit

    ports = {m.host or m.container for m in svc.ports}
    target = urlsplit(svc.probe.target) if "://" in svc.probe.target else None
    if target is not None and target.hostname in ("127.0.0.1", "localhost") and target.port:
        ports.add(target.port)
    if svc.probe.kind == "tcp":
        ports.add(int(svc.probe.target.rpartition(":")[2]))
    return ports


def check_ports_free(svc: ServiceSpec, holds: HeldPorts | None = None) -> None:
    """Raise PrerequisiteError for a port of ``svc`` that another process has taken
    (one chosen by --pyairtable-free-ports: taken after it was chosen, a lost race),
    naming who holds it. Two runs could both find a port free and both launch: a run
    claims its ports first (portclaims.py), and any other program that takes one in
    between is caught when the probe passes (``LocalBackend.identity_problem``)."""
    taken = []
    for port in sorted(service_ports(svc)):
        with socket.socket() as probe:
            # SO_REUSEADDR: a port in TIME_WAIT from our own last stop is free to use.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                taken.append(port)
    raced = [
        f"{p} (chosen for {holds.variable_of(p)})" for p in taken if holds and holds.variable_of(p)
    ]
    if raced:
        raise PrerequisiteError(
            f"port {', '.join(raced)} was taken by another process after "
            "--pyairtable-free-ports chose it, before the service could bind it. "
            "Fix: run again (other ports are chosen), or set the variable yourself."
        )
    if taken:
        more = f" (and {len(taken) - 10} more)" if len(taken) > 10 else ""
        held = "; ".join(f"port {p} by {sockets.holder_of(p)}" for p in taken[:3])
        ports = ", ".join(map(str, taken[:10])) + more
        raise PrerequisiteError(
            f"port {ports} is already in use: {held}. Fix: stop that process (a kept stack: "
            "pyairtable down), publish the service on another port, or let "
            "--pyairtable-free-ports choose free ones."
        )


def answered_by_others(
    svc: ServiceSpec, own: Callable[[], set[int]], run: Callable[[], set[int]]
) -> str | None:
    """Why the socket listening on ``svc``'s probe port is not held by its processes
    (``own``) nor by another service of its run (``run``: a worker's check through the
    gateway is the run's own affair), or None. The run's are read only when needed."""
    from ..probes.waiting import port_watch  # (the probes' clients: not for `config`)

    watch = port_watch(svc.probe.kind, svc.probe.target)
    if watch is None:
        return None
    host, port = watch.address
    foreign = sockets.foreign_listeners(port, host, own())
    if foreign:
        foreign -= sockets.sockets_of(run())
    if not foreign:
        return None
    return (
        f"port {port} answers, but not from this service's processes: it is held by "
        f"{sockets.holder_of(port, host, inodes=foreign)}"
    )
