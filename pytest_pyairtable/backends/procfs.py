"""What /proc says about processes: start times, process groups and our run markers.

Every process a service starts carries ``PYAIRTABLE_RUN_ID`` and ``PYAIRTABLE_SERVICE``
in its environment (inherited by whatever it forks, also past ``setsid``), so what a
run started can be found again without trusting a PID alone: PIDs are reused, and a
PID is only signalled while its start time still matches the one recorded.
"""

from __future__ import annotations

import contextlib
import os
import select
from dataclasses import dataclass
from pathlib import Path

RUN_ID_VAR = "PYAIRTABLE_RUN_ID"
SERVICE_VAR = "PYAIRTABLE_SERVICE"


@dataclass(frozen=True)
class Proc:
    pid: int
    state: str  # "R", "S", "Z" (zombie), ...
    pgrp: int
    ticks: int  # start time in clock ticks since boot
    threads_exiting: bool = False
    ppid: int = 0  # a zombie leader whose other threads are not gone yet

    @property
    def live(self) -> bool:
        # An orphan's zombie lingers where PID 1 does not reap: it is gone. A killed
        # process's main thread can show Z before its other threads have exited, and
        # it cannot be reaped until they have: not gone yet.
        return self.state != "Z" or self.threads_exiting


def stat(pid: int) -> Proc | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name (which may hold spaces and parens).
    fields = text.rsplit(")", 1)[1].split()
    exiting = fields[0] == "Z" and _other_threads(pid)
    return Proc(pid, fields[0], int(fields[2]), int(fields[19]), exiting, int(fields[1]))


def _other_threads(pid: int) -> bool:
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` in clock ticks, or None if it is gone."""
    found = stat(pid)
    return None if found is None else found.ticks


def is_running(pid: int, ticks: int | None) -> bool:
    """``pid`` is still the process started at ``ticks``, and not a zombie."""
    found = stat(pid)
    return found is not None and found.live and (ticks is None or found.ticks == ticks)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def all_procs() -> list[Proc]:
    procs = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := stat(int(entry))) is not None:
            procs.append(found)
    return procs


def markers(pid: int) -> tuple[str, str] | None:
    """(run id, service) from the environment ``pid`` was started with; service is ""
    for a run's own helpers (its reaper). None when it carries no run id."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    values = {}
    for item in environ:
        key, sep, value = item.partition(b"=")
        if sep and key in (RUN_ID_VAR.encode(), SERVICE_VAR.encode()):
            values[key.decode()] = value.decode(errors="replace")
    if RUN_ID_VAR not in values:
        return None
    return values[RUN_ID_VAR], values.get(SERVICE_VAR, "")


def users_of(dirs: list[Path]) -> dict[int, str]:
    """PID -> the directory of ``dirs`` that a live process works in, is rooted in or
    holds a file open in (a server's data dir is its working directory; a service's
    output goes to a log file it holds open). Only where the process can be read: a
    process of another user is not ours to count."""
    prefixes = {os.path.realpath(d): str(d) for d in dirs}

    def inside(target: str) -> str | None:
        target = target.removesuffix(" (deleted)")
        for prefix, name in prefixes.items():
            if target == prefix or target.startswith(prefix + "/"):
                return name
        return None

    found: dict[int, str] = {}
    for proc in all_procs():
        if not proc.live or proc.pid == os.getpid():
            continue
        links = [f"/proc/{proc.pid}/cwd", f"/proc/{proc.pid}/root"]
        with contextlib.suppress(OSError):
            links += [f"/proc/{proc.pid}/fd/{fd}" for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        for link in links:
            try:
                used = inside(os.readlink(link))
            except OSError:
                continue
            if used is not None:
                found[proc.pid] = used
                break
    return found


def tcp_ports_of(pid: int) -> set[int]:
    """The local ports of ``pid``'s own TCP sockets (IPv4 and IPv6): a PostgreSQL session
    whose client port is among them is that process's connection. Empty when /proc does
    not say (another user's process, or it is gone)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def container_pidfd(pid: int, cid: str) -> int | None:
    """A pidfd of a container's main process (``pid``, as its engine reports it), or None
    unless it is provably that process: seen from here (a local engine, not a VM's or a
    remote one), in a cgroup named for the container, and still alive once the fd holds
    it (so its PID was not reused between the engine's answer and this look)."""
    if pid <= 0:
        return None
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # gone, or no pidfds here
        return None
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        cgroups = ""
    if cid in cgroups and not pidfd_ended(fd, 0):
        return fd
    os.close(fd)
    return None


def pidfd_ended(fd: int, timeout: float) -> bool:
    """Whether the process of pidfd ``fd`` has ended, waiting up to ``timeout`` seconds."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))
