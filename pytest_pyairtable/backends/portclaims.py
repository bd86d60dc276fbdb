"""Claims on the host ports a run's services are about to listen on, so that two runs
started at the same moment on the same fixed ports cannot both launch.

Both would find a port free (nothing listens yet) and both launch; the server that
loses the bind exits, or, worse, its probe reaches the winner's server. A claim is an
exclusive ``flock`` on ``<dir>/<port>`` taken before the port is checked and the
service launched, and held until the run closes: the second run fails at once, before
it starts anything, naming the run and process that hold the claim. The file says who
holds it (pid, start time, run id, service), for that message.

The claims' directory is per user (``pyairtable-ports-<uid>`` in /dev/shm, else /tmp;
0700): runs of
different users are kept apart by the check of who answered a probe (sockets.py). A
claim is released by closing its file; a killed run's claims go with its process. A
released file is removed; a claimant checks that the file it locked is still the one
at the path, so a removal between its open and its lock never yields two holders.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from pathlib import Path

from ..support.errors import PrerequisiteError
from .procfs import is_running, proc_start_time


def claims_dir() -> Path:
    """On tmpfs where there is one: a claim made and removed there costs ~0.02 ms, on a
    disk-backed /tmp ~5 ms (a file created and unlinked per port)."""
    shm = Path("/dev/shm")
    base = shm if os.access(shm, os.W_OK | os.X_OK) else Path("/tmp")
    return base / f"pyairtable-ports-{os.geteuid()}"


def _own_dir(path: Path) -> Path | None:
    """The claims dir, ours and private; None where it cannot be (then no claims)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    try:
        info = path.lstat()
    except OSError:
        return None
    if not path.is_dir() or path.is_symlink() or info.st_uid != os.geteuid():
        return None  # planted by someone else: claims are a convenience, not worth a risk
    return path


def _claimant(path: Path) -> str | None:
    """The run id a claim file names, if it can be read."""
    try:
        run = json.loads(path.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return str(run) if run else None


def _holder(path: Path, inode: int) -> str:
    """Who holds the claim, from its file: written just after the lock is taken, so
    read again for a moment while it is still empty; else the kernel's word."""
    deadline = time.monotonic() + 0.5
    while True:
        try:
            data = json.loads(path.read_text())
            pid, ticks = int(data["pid"]), data.get("ticks")
            run, service = str(data["run_id"]), str(data["service"])
            break
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return _locker(inode)
            time.sleep(0.001)
    alive = "" if is_running(pid, ticks) else ", which has just ended"
    return f"service '{service}' of pytest-pyairtable run {run} (pid {pid}{alive})"


def _locker(inode: int) -> str:
    """The process holding a flock on ``inode``, as /proc/locks says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
                return f"another run (pid {fields[4]})"
    return "another run"


def _lock(fd: int) -> bool:
    """An exclusive lock on ``fd``, if no other run holds it. A held lock is asked again
    for a moment: another run's sweep of unheld files holds one for microseconds."""
    deadline = time.monotonic() + 0.05
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)


class PortClaims:
    """This run's claims, by port."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.dir = _own_dir(claims_dir())
        self._held: dict[int, int | None] = {}  # port -> its locked file (None: the
        # run's own claim, held by another of its processes)
        self._lock = threading.Lock()  # services launch from several threads
        self._released = False

    def claim(self, service: str, ports: set[int]) -> None:
        """Claim ``ports`` for ``service`` (those held already stay held); raise a
        PrerequisiteError naming the holder of one that another run holds, or saying
        that the run has released its claims (it is over: nothing would release one)."""
        if self.dir is None:
            return
        with self._lock:
            if self._released:
                raise PrerequisiteError(  # (the caller names the service)
                    "its run is over: its backend closed and released its port claims, and "
                    "nothing is started after that. Fix: start it in a new run."
                )
            for port in sorted(ports - set(self._held)):
                self._held[port] = self._take(service, port)

    def _take(self, service: str, port: int) -> int | None:
        assert self.dir is not None
        path = self.dir / str(port)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            if not _lock(fd):
                inode = os.fstat(fd).st_ino
                os.close(fd)
                if _claimant(path) == self.run_id:
                    return None  # this run's, held by its owner (`pyairtable restart`)
                raise PrerequisiteError(
                    f"port {port} is claimed by another run of this user, which launches or "
                    f"runs a service on it: {_holder(path, inode)}. Fix: let that run finish "
                    "(or stop it), "
                    "publish the service on another port, or let --pyairtable-free-ports "
                    "choose free ones."
                ) from None
            try:
                same = os.fstat(fd).st_ino == path.stat().st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # released and removed meanwhile: claim the file now there
        me = os.getpid()
        record = {"pid": me, "ticks": proc_start_time(me), "run_id": self.run_id}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({**record, "service": service}).encode(), 0)
        except BaseException:  # (a full /dev/shm): not held, so not left locked either
            with contextlib.suppress(OSError):
                path.unlink()
            os.close(fd)
            raise
        return fd

    def release(self) -> None:
        """Give every claim up (the run's services are stopped, or kept: a kept stack's
        servers hold their ports themselves), for good: no claim is taken after."""
        assert self.dir is not None or not self._held
        with self._lock:
            held, self._held = self._held, {}
            self._released = True
        for port, fd in held.items():
            if fd is None:
                continue
            with contextlib.suppress(OSError):
                os.unlink(self.dir / str(port))  # type: ignore[operator]
            os.close(fd)


def sweep() -> int:
    """Remove the claim files that no process holds (left by runs that were killed);
    how many went. One is removed only while locked here, as a release does."""
    folder = claims_dir()
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if not entry.name.isdigit() or entry.is_symlink():
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.fstat(fd).st_ino == os.stat(entry.path).st_ino:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass  # held: a live run's claim
            finally:
                os.close(fd)
    return removed
