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

A launch's cgroup is empty until its shell joins it, and other processes remove empty
cgroups: any run's sweep of those whose owner is gone (a kept stack's owner is gone by
design, while `pyairtable restart` launches into it), a run's end (while a restart
under its foreground `up` launches). Removed in that moment, the shell's write fails
(ENODEV; dash says "I/O error" for any failed write). So the ``cgroup.procs`` handed to
the shell holds a shared flock until the shell lets go of it, just after joining; a
removal takes the lock exclusively and without waiting, and skips a cgroup it cannot
lock. When it first needs to know (the launch's stop, its pids, its record), the
launcher waits for the same lock to learn that the shell has tried (by then long done:
not waiting at the launch keeps the shell's start off the chain's critical path), and
where it could not join (a permission on the common ancestor, a clean-up that honours
no lock), the launch runs on, tracked as without cgroups, with a notice of why.

The kernel makes each move into a cgroup wait for an RCU grace period (~8 ms) unless
another move came in the last ~10 ms: the price of a service joining before it runs.

Where it does not (a container with /sys/fs/cgroup read-only, no cgroup v2), the
tracking is what it was: process groups, the run's marker variables and the process
tree; ``unavailable`` says why, for the run summary. ``PYAIRTABLE_CGROUP=0`` turns the
cgroups off.

(Just over 350 lines: making, joining and removing a cgroup share the lock that keeps a
launch's cgroup from removal, and read best in one place.)
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import signal
import threading
import time
from pathlib import Path

ENV = "PYAIRTABLE_CGROUP"
PREFIX = "pyairtable-"
# Joins the cgroup open on fd 0 (the shell's first act, before the command runs), then
# runs the command with /dev/null as its input, as a service always had; closing fd 0
# releases the launch's lock. Where the join fails, the command runs all the same: the
# launcher sees where it is and tracks it without the cgroup.
JOIN = 'echo 0 >&0 2>/dev/null; exec </dev/null; exec "$@"'
# Rounds of making a launch's cgroup that a removal can take from under it (each round
# loses only to a removal that came between its mkdir and its lock).
MAKE_ATTEMPTS = 5
# How long a launcher waits for its shell's attempt to join (two builtins: milliseconds,
# seconds on a loaded machine); past it, it looks where the shell is all the same.
JOIN_WAIT = 30.0


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


def _cgroup_of(pid: int, mount: Path | None) -> Path | None:
    """Where ``pid`` is (also once it has exited, as long as it is not reaped)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            if line.startswith("0::") and mount is not None:
                return mount / line[3:].strip().lstrip("/")
    return None


def _hold(path: Path) -> tuple[int, int] | None:
    """``path``'s ``cgroup.procs`` opened to write and share-locked (no removal takes it
    from now on), with a second descriptor to wait for the lock on; None if a removal
    took it first."""
    try:
        procs = os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    fcntl.flock(procs, fcntl.LOCK_SH)  # waits out a removal that holds it
    try:  # still there, and the same cgroup (not another made under its name since)
        watch = os.open(path / "cgroup.procs", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        os.close(procs)
        return None
    if os.fstat(watch).st_ino != os.fstat(procs).st_ino:
        os.close(procs)
        os.close(watch)
        return None
    return procs, watch


def _inside(where: Path | None, path: Path) -> bool:
    return where is not None and (where == path or path in where.parents)


def _wait_for_join(pid: int, path: Path, watch: int, wait: float) -> bool:
    """Until ``pid`` (the launch's shell) is in ``path`` or has let go of its lock, the
    sign it tried and failed; False if ``wait`` passed first. Polled, not blocked on the
    lock: a process forked (not exec'd) from another thread of ours meanwhile shares the
    launch's descriptor, and with it the lock, as long as it lives."""
    deadline, mount = time.monotonic() + wait, _mount()
    pause = 0.0001
    while not _inside(_cgroup_of(pid, mount), path):
        try:
            fcntl.flock(watch, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(pause)
            # fine-grained: the launch waits on it (a shell's start, ~1 ms quiet)
            pause = min(pause * 2, 0.0005)
    return True


class ServiceCgroup:
    """One launch of a service: its processes and how to end them. Made, it holds its
    ``cgroup.procs`` locked (``procs``) until its launch's shell has joined."""

    def __init__(self, path: Path | str, procs: int, watch: int) -> None:
        self.path = Path(path)
        self.procs = procs  # the launch's standard input, locked until it has joined
        self._watch = watch

    def let_go(self) -> None:
        """Close our descriptors (the launch failed to start, or has joined)."""
        if self._watch >= 0:  # unlocked first: a copy forked meanwhile would keep it
            fcntl.flock(self._watch, fcntl.LOCK_UN)
        for fd in (self.procs, self._watch):
            if fd >= 0:
                os.close(fd)
        self.procs = self._watch = -1

    def hand_over(self) -> None:
        """The launch has started: the shell's copy of ``cgroup.procs`` holds the lock
        from now on, until the shell has joined (or exits)."""
        if self.procs >= 0:
            os.close(self.procs)
            self.procs = -1

    def joined(self, pid: int) -> str | None:
        """None once ``pid``, the launch's shell, has joined; else why it did not. Waits
        until it is there or has tried: it lets go of ``cgroup.procs``, and the lock,
        right after (or when it exits)."""
        self.hand_over()
        try:
            tried = _wait_for_join(pid, self.path, self._watch, JOIN_WAIT)
        finally:
            self.let_go()
        where = _cgroup_of(pid, _mount())
        if _inside(where, self.path):
            return None  # (a service may make cgroups of its own under it)
        if not tried:  # it may join yet: the run's cgroup ends it all the same
            return f"its launch had not joined its cgroup {self.path} after {JOIN_WAIT:.0f} s"
        if not self.path.is_dir():
            why = (
                "it was removed before the launch joined it, by a clean-up that does not "
                "wait for launches (another tool's, or an earlier version of this one)"
            )
        else:
            common = self.path
            while where is not None and common != where and common not in where.parents:
                common = common.parent
            why = (
                f"the kernel refused the move; it needs the right to write {common}/cgroup.procs, "
                "the cgroup common to both"
            )
        remove(self.path)  # empty: nothing joined it
        return f"its launch could not join its cgroup {self.path}: {why}"

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

    def service(self, name: str) -> ServiceCgroup | str:
        """A fresh cgroup for one launch of ``name`` (a restart gets its own), held until
        the launch has joined it; or why there is none (the launch then goes without)."""
        lost = 0
        while lost < MAKE_ATTEMPTS:
            with self._lock:
                number = next(self._count)
            path = self.path / f"{name}.{number}"
            try:
                # Swept while empty with its owner gone (a kept stack whose services all
                # ended): the run's cgroup is made again where its record says.
                self.path.mkdir(exist_ok=True)
            except OSError as exc:
                return f"cannot make a cgroup in {self.path.parent}: {os.strerror(exc.errno or 0)}"
            try:
                path.mkdir()
            except FileExistsError:  # another process of the run counts on its own
                continue
            except FileNotFoundError:  # the run's cgroup went between the two
                lost += 1
                continue
            except OSError as exc:
                return f"cannot make a cgroup in {self.path}: {os.strerror(exc.errno or 0)}"
            held = _hold(path)
            if held is not None:
                return ServiceCgroup(path, *held)
            lost += 1
        return f"{self.path}'s cgroups were removed as fast as they were made"

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
    refuses to remove one that still holds a process, so nothing alive is lost; nor is
    one a launch is joining (its lock is held)."""
    for folder, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
        _remove_unless_joining(folder)


def _remove_unless_joining(folder: str) -> None:
    try:
        procs = os.open(os.path.join(folder, "cgroup.procs"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(procs, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rmdir(folder)
    except OSError:
        pass  # a launch is joining it, it holds a process, or it is gone
    finally:
        os.close(procs)


def sweep() -> list[str]:
    """Remove the empty cgroups of earlier runs whose owner is gone (a run killed with
    its reaper, or a kept stack's: only those of its launches that ended, not one a
    launch is joining); a cgroup that holds a process is never touched."""
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
