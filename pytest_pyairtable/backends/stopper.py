"""One way to end everything a service started, and to know it has ended.

A service is what its cgroup holds (see cgroups.py), where the machine gives it one;
and everywhere its process group, whatever left that group (``setsid``, a double fork)
but still carries the run's marker variables, and the descendants of all of these
(which finds a child that cleared its environment while its parent lives). Ending it
signals all of them,
waits for all of them (not only the leader), SIGKILLs what is left after the grace
period, and looks again before it says they are gone. The end of a run, `pyairtable
down` and the reaper all end services through here.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal as signals
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from . import cgroups
from .procfs import Proc, all_procs, is_running, markers, stat

KILL_WAIT = 5.0  # SIGKILL is not refused; what outlives this is stuck in the kernel
CONFIRM_ROUNDS = 3
# (pid, start ticks) -> (run id, service) of every process a scan found as one service's
# (once seen, its own: a descendant that cleared its environment is still known after
# its parent exits and it is re-parented). Bounded by the processes services start.
_SEEN: dict[tuple[int, int], tuple[str, str]] = {}


@dataclass(frozen=True)
class Target:
    """What one service started (or, with no service, everything a run started)."""

    run_id: str
    service: str = ""
    pgid: int | None = None
    ticks: int | None = None  # the group leader's start time, recorded at launch
    cgroup: str | None = None  # its cgroup (v2): everything it started, wherever it went


def _groups(targets: Sequence[Target]) -> set[int]:
    groups = set()
    for target in targets:
        if target.pgid is None:
            continue
        leader = stat(target.pgid)
        # A group id is not reused while any member lives: with its leader gone, what
        # still has the id is ours. A leader with another start time is someone else.
        if leader is None or leader.ticks == target.ticks:
            groups.add(target.pgid)
    return groups


def _since(targets: Sequence[Target]) -> int:
    """No process a target started can be older than its group leader: whatever carries
    a service's marker descends from that leader. Older processes need no look at their
    environment (the costly part of a scan). 0 where a target has no recorded leader."""
    ticks = [t.ticks for t in targets if t.ticks is not None]
    return min(ticks) if ticks and len(ticks) == len(targets) else 0


def find(targets: Sequence[Target]) -> dict[int, int]:
    """PID -> start ticks of every live process the targets started."""
    groups = _groups(targets)
    services = {(t.run_id, t.service) for t in targets if t.service}
    runs = {t.run_id for t in targets if not t.service}
    since = _since(targets)
    in_cgroups = set().union(*(cgroups.pids_in(t.cgroup) for t in targets if t.cgroup))
    found = {}
    children: dict[int, list[Proc]] = {}
    for proc in all_procs():
        if not proc.live or proc.pid == os.getpid():
            continue
        children.setdefault(proc.ppid, []).append(proc)
        seen = _SEEN.get((proc.pid, proc.ticks))
        if proc.pgrp in groups or proc.pid in in_cgroups:
            found[proc.pid] = proc.ticks
            continue
        if seen is not None and (seen in services or (seen[0] in runs and seen[1])):
            found[proc.pid] = proc.ticks
            continue
        if proc.ticks < since:
            continue
        marked = markers(proc.pid)
        if marked is not None and marked[1] and (marked in services or marked[0] in runs):
            found[proc.pid] = proc.ticks
    # What they started since, whatever it did to its environment or session.
    parents = list(found)
    while parents:
        for child in children.get(parents.pop(), ()):
            if child.pid not in found:
                found[child.pid] = child.ticks
                parents.append(child.pid)
    if len(targets) == 1 and targets[0].service:
        owner = (targets[0].run_id, targets[0].service)
        _SEEN.update(dict.fromkeys(found.items(), owner))
    return found


def send(
    found: Mapping[int, int], sig: int, groups: Sequence[int] = (), cgroups_: Sequence[str] = ()
) -> None:
    """Signal the groups (which also reach what was forked since), and each process
    found outside them that is still the one found; SIGKILL also goes to the cgroups,
    all at once. Each process once: to many servers a second signal is another request
    (stop now), and it enters a handler still at work on the first (coverage's, saving
    its data on SIGTERM, broke the file)."""
    if sig == signals.SIGKILL:
        for path in cgroups_:
            cgroups.kill(path)
    outside = {}
    for pid, ticks in found.items():
        proc = stat(pid)
        if proc is None or proc.pgrp not in groups:
            outside[pid] = ticks
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
    for pid, ticks in outside.items():
        if is_running(pid, ticks):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def signal(targets: Sequence[Target], sig: int) -> bool:
    """Signal everything the targets started; False if nothing of it is left."""
    found = find(targets)
    send(found, sig, sorted(_groups(targets)), [t.cgroup for t in targets if t.cgroup])
    return bool(found)


def wait_gone(
    found: Mapping[int, int], deadline: float, reap: Callable[[], object] | None = None
) -> dict[int, int]:
    """Until every process found has exited or the deadline passed; what is left.
    Woken by the kernel the moment each exits (a pidfd per process), where it can be;
    else by polling."""
    watched = _pidfds(found)
    try:
        if watched is not None:
            _await_pidfds(watched, deadline)
        pause = 0.001
        while True:
            if reap is not None:
                reap()  # our own child: collect its exit status, so it is not a zombie
            left = {pid: ticks for pid, ticks in found.items() if is_running(pid, ticks)}
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
    finally:
        for fd in watched or ():
            os.close(fd)


def wait_child(popen: subprocess.Popen[bytes], timeout: float) -> int | None:
    """``popen.wait(timeout)``, woken the moment the child exits: Popen's own timed wait
    polls at intervals doubling up to 50 ms."""
    child = stat(popen.pid)
    if popen.poll() is None and child is not None:
        fds = _pidfds({popen.pid: child.ticks})
        if fds is not None:
            try:
                _await_pidfds(fds, time.monotonic() + timeout)
            finally:
                for fd in fds:
                    os.close(fd)
    try:
        return popen.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def _pidfds(found: Mapping[int, int]) -> list[int] | None:
    """A pidfd for each process still the one found (PIDs are reused: its start time is
    checked once the fd holds it); None where the kernel has no pidfds."""
    fds: list[int] = []
    for pid, ticks in found.items():
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        except (AttributeError, OSError):
            for opened in fds:
                os.close(opened)
            return None
        if is_running(pid, ticks):
            fds.append(fd)
        else:
            os.close(fd)
    return fds


def _await_pidfds(fds: Sequence[int], deadline: float) -> None:
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    waiting = len(fds)
    while waiting and (left := deadline - time.monotonic()) > 0:
        for fd, _ in poller.poll(left * 1000):
            poller.unregister(fd)
            waiting -= 1


def end(
    targets: Sequence[Target],
    sig: int,
    grace: float,
    *,
    reap: Callable[[], object] | None = None,
) -> dict[int, int]:
    """``sig`` (and SIGCONT, for a paused service) to everything the targets started,
    up to ``grace`` seconds for all of it to exit, then SIGKILL. Returns what is still
    alive after looking again: empty when everything is gone."""
    found = find(targets)
    groups = sorted(_groups(targets))
    held = [t.cgroup for t in targets if t.cgroup]
    send(found, sig, groups, held)
    if sig != signals.SIGKILL:
        send(found, signals.SIGCONT, groups)
    wait_gone(found, time.monotonic() + grace, reap)
    for _ in range(CONFIRM_ROUNDS):
        left = find(targets)
        if not left:
            return {}
        send(left, signals.SIGKILL, sorted(_groups(targets)), held)
        wait_gone(left, time.monotonic() + KILL_WAIT, reap)
    return find(targets)
