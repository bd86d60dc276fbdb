"""A cgroup (v2) per run and per launch of a service: what a service starts stays in it,
whatever it does to its environment, session or parent (``setsid env -i ...``, a double
fork), so stopping it ends all of it and nothing escapes.

Where the machine allows it (cgroup v2 mounted and writable by us: root, or a delegated
subtree), a run makes ``pyairtable-<owner pid>.<ticks>-<run id>`` beside the cgroup it
runs in, and each launch a child ``<service>.<n>`` of it. A service joins its cgroup
before it runs a line of its own: the launch runs ``/bin/sh -c 'echo 0 >&0; exec
"$@"'`` with the cgroup's ``cgroup.procs`` as standard input (opened by us, so a server
run as another user joins too), then execs the command with /dev/null as its input. A
Python ``preexec_fn`` would do the same, but forces a full fork of pytest: ~28 ms for a
300 MB process against ~0.5 ms for the shell, which runs in the child.

Where it does not (a container with /sys/fs/cgroup read-only, no cgroup v2), the
tracking is what it was: process groups, the run's marker variables and the process
tree; ``unavailable`` says why, for the run summary. ``PYAIRTABLE_CGROUP=0`` turns the
cgroups off.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from pathlib import Path

ENV = "PYAIRTABLE_CGROUP"
PREFIX = "pyairtable-"
# Joins the cgroup open on fd 0 (the shell's first act, before the command runs), then
# runs the command with /dev/null as its input, as a service always had.
JOIN = 'echo 0 >&0 || exit 125; exec </dev/null; exec "$@"'
JOIN_FAILED = 125


def _mount() -> Path | None:
    """Where cgroup v2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a
    hybrid system), or None."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "-" in fields and fields[fields.index("-") + 1] == "cgroup2":
            return Path(fields[4])
    return None


def _own_path() -> str | None:
    """This process's cgroup v2 path (``0::/user.slice/...``), or None."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    return None


def _owner_tag() -> str:
    from .procfs import proc_start_time

    return f"{os.getpid()}.{proc_start_time(os.getpid())}"


class ServiceCgroup:
    """One launch of a service: its processes and how to end them."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def open_procs(self) -> int:
        """``cgroup.procs`` opened to write, for the launch's shell to join through."""
        return os.open(self.path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)

    def pids(self) -> set[int]:
        return pids_in(self.path)

    def kill(self) -> None:
        kill(self.path)

    def remove(self) -> None:
        remove(self.path)


class RunCgroup:
    """A run's cgroup: a child per launch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._count = itertools.count(1)
        self._lock = threading.Lock()

    @classmethod
    def create(cls, run_id: str) -> RunCgroup | str:
        """The run's cgroup, or why there is none (the tracking then in force)."""
        if os.environ.get(ENV, "1").lower() in ("0", "no", "false", "off"):
            return f"{ENV}=0"
        mount, own = _mount(), _own_path()
        if mount is None or own is None:
            return "no cgroup v2 here"
        parent = mount / own.lstrip("/")
        path = parent / f"{PREFIX}{_owner_tag()}-{run_id}"
        try:
            path.mkdir()
            os.close(os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        except OSError as exc:
            with contextlib.suppress(OSError):
                path.rmdir()
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            return f"cannot create a cgroup in {parent}: {why}"
        return cls(path)

    def service(self, name: str) -> ServiceCgroup:
        """A fresh cgroup for one launch of ``name`` (a restart gets its own)."""
        while True:  # another process of the run (`pyairtable restart`) counts on its own
            with self._lock:
                number = next(self._count)
            path = self.path / f"{name}.{number}"
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return ServiceCgroup(path)

    def remove(self) -> None:
        remove(self.path)

    def end(self, wait: float = 5.0) -> None:
        """Kill what is still in it (what an earlier launch of a restarted service left,
        say), wait until it is empty, remove it."""
        if pids_in(self.path):
            kill(self.path)
            deadline = time.monotonic() + wait
            while pids_in(self.path) and time.monotonic() < deadline:
                time.sleep(0.005)
        remove(self.path)


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux 3.4+): what a
    service orphans is re-parented here, not to init, and stays in reach."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(36, 1, 0, 0, 0)) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def track(run_id: str) -> tuple[RunCgroup | None, str]:
    """The run's cgroup, if it can have one, and how its services are tracked (for the
    run summary); without one, this process becomes the subreaper of what they orphan."""
    made = RunCgroup.create(run_id)
    if isinstance(made, RunCgroup):
        return made, f"a cgroup per service ({made.path})"
    how = "pytest as child subreaper" if become_subreaper() else "no subreaper"
    return None, f"process groups, run markers and the process tree, {how} (no cgroup: {made})"


def pids_in(path: Path | str) -> set[int]:
    """Every process in the cgroup at ``path`` and below it (none if it is gone)."""
    found: set[int] = set()
    for folder, dirs, _ in os.walk(path):
        with contextlib.suppress(OSError):
            found.update(int(p) for p in Path(folder, "cgroup.procs").read_text().split())
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return found


def kill(path: Path | str) -> None:
    """SIGKILL everything in the cgroup at ``path`` and below it, at once (the kernel's
    ``cgroup.kill``; before Linux 5.14, each process)."""
    try:
        Path(path, "cgroup.kill").write_text("1")
        return
    except FileNotFoundError:
        if not Path(path).is_dir():
            return  # gone, and its processes with it
    except OSError:
        pass
    for pid in pids_in(path):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def remove(path: Path | str) -> None:
    """Remove the cgroup at ``path`` and its children, those that are empty: the kernel
    refuses to remove one that still holds a process, so nothing alive is lost."""
    for folder, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def sweep() -> list[str]:
    """Remove the empty cgroups of earlier runs whose owner is gone (a run killed with
    its reaper); a populated one (a kept stack's) is never touched."""
    from .procfs import is_running

    mount, own = _mount(), _own_path()
    if mount is None or own is None:
        return []
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(mount / own.lstrip("/")):
            owner = entry.name.removeprefix(PREFIX).partition("-")[0]
            pid, _, ticks = owner.partition(".")
            if not entry.name.startswith(PREFIX) or not pid.isdigit() or not ticks.isdigit():
                continue
            if is_running(int(pid), int(ticks)):
                continue
            remove(entry.path)
            if not os.path.exists(entry.path):
                removed.append(entry.path)
    return removed


def join_command(argv: list[str]) -> list[str]:
    """``argv`` run by the shell that first joins the cgroup on its standard input."""
    return ["/bin/sh", "-c", JOIN, argv[0], *argv]
