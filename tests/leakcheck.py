"""The leak check every test runs inside (the autouse ``no_leaks`` fixture in conftest.py),
and the look at /proc it is made of.

A check owns a fresh temp root: the stacks it starts find it in ``PYAIRTABLE_TMPDIR``
(and ``TMPDIR``), their processes carry it in their environment, and their run dirs are
created in it. So the check finds exactly what it started, however many other runs share
the machine: processes by that environment, run dirs in the root, and the tmpfs data dirs
in /dev/shm by the run ids it saw created in its root (watched with inotify, so a run that
came and went is seen). It never looks at, counts or kills anything else.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import stat
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from pytest_pyairtable.backends.local import RUN_ID_VAR

SHM = Path("/dev/shm")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
# Temp root -> when its check began. Only processes started since then are read: an older
# one's environment cannot name the root, and reading a process's environment waits on
# its memory lock (a scan of every process on a busy machine took 0.2-0.5 s a test).
_SINCE: dict[str, float] = {}


def _boot_clock() -> float:
    """Now, in seconds after boot: the clock of the start times in /proc/PID/stat."""
    return float(Path("/proc/uptime").read_text().split()[0])


def _started(pid: int | str) -> tuple[str, float] | None:
    """(state, start time in seconds after boot) of ``pid``, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19]) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def _environ(pid: int | str, since: float = 0.0) -> list[bytes] | None:
    """The environment ``pid`` started with, or None for a zombie, a gone process, or
    one started before ``since`` (seconds after boot)."""
    started = _started(pid)
    if started is None or started[0] == "Z" or started[1] < since:
        return None
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None


def _pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def _run_id(environ: list[bytes], own: bytes) -> str | None:
    """The run id in ``environ``, if it holds ``own`` (a temp root's variable)."""
    if own not in environ:
        return None
    marker = RUN_ID_VAR.encode() + b"="
    ids = [item[len(marker) :].decode() for item in environ if item.startswith(marker)]
    return ids[-1] if ids else None


def _own_variable(root: Path | str) -> bytes:
    return f"PYAIRTABLE_TMPDIR={root}".encode()


def marked_processes(root: Path | str | None = None) -> dict[int, str]:
    """PID -> run id of each live process a stack started under ``root`` (by default
    this test's PYAIRTABLE_TMPDIR), found by its environment. (A server that reuses its
    environment's memory, as redis-server does, is found by ``LeakCheck`` instead.)"""
    root = str(root if root is not None else os.environ.get("PYAIRTABLE_TMPDIR", ""))
    own, since = _own_variable(root), _SINCE.get(root, 0.0)
    found: dict[int, str] = {}
    for pid in _pids():
        if (environ := _environ(pid, since)) and (run := _run_id(environ, own)) is not None:
            found[pid] = run
    return found


def service_pids(service: str, root: Path | str | None = None) -> list[int]:
    """Live processes of ``service`` (one with its own command) in the stacks started
    under ``root``, found by their environment."""
    tag = f"PYAIRTABLE_SERVICE={service}".encode()
    return [pid for pid in marked_processes(root) if tag in (_environ(pid) or [])]


def kill_own(pid: int, is_own: Callable[[int], bool], sig: int = signal.SIGKILL) -> None:
    """Signal ``pid`` (SIGKILL by default) only if ``is_own`` still says it is ours: the
    pidfd pins the process, so a PID reused in between is never hit."""
    with contextlib.suppress(ProcessLookupError):
        fd = os.pidfd_open(pid)
        try:
            if is_own(pid):
                signal.pidfd_send_signal(fd, sig)
        finally:
            os.close(fd)


class _CreatedNames:
    """Names created directly in a directory, from inotify: it sees a run dir that was
    made and removed between two looks. One inotify instance serves every directory this
    process watches: closing an instance waits for an RCU grace period (20 ms a test)."""

    _IN_CREATE, _IN_MOVED_TO, _IN_Q_OVERFLOW = 0x100, 0x80, 0x4000
    _libc = ctypes.CDLL(None, use_errno=True)
    _fd: int | None = None
    _watched: ClassVar[dict[int, set[str]]] = {}  # watch descriptor -> names seen

    def __init__(self, path: Path) -> None:
        if _CreatedNames._fd is None:
            _CreatedNames._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wd = -1
        if _CreatedNames._fd >= 0:
            mask = self._IN_CREATE | self._IN_MOVED_TO
            self._wd = self._libc.inotify_add_watch(_CreatedNames._fd, os.fsencode(path), mask)
        if self._wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {path}")
        self.names = self._watched[self._wd] = set()

    def read(self) -> set[str]:
        """The names created so far (every watch's events are sorted out on the way)."""
        assert _CreatedNames._fd is not None
        while True:
            try:
                data = os.read(_CreatedNames._fd, 1 << 16)
            except BlockingIOError:
                return self.names
            offset = 0
            while offset < len(data):
                wd, mask, _, length = struct.unpack_from("iIII", data, offset)
                assert not mask & self._IN_Q_OVERFLOW, "inotify queue overflowed"
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0")
                if length and wd in self._watched:  # not a removed watch's last word
                    self._watched[wd].add(os.fsdecode(name))
                offset += 16 + length

    def close(self) -> None:
        assert _CreatedNames._fd is not None
        self.read()  # what is queued for this watch goes before its descriptor does
        self._libc.inotify_rm_watch(_CreatedNames._fd, self._wd)  # gone with its dir: no matter
        del self._watched[self._wd]


def _run_key(name: str) -> str:
    """The run id of a run's dir: ``pyairtable-run-<run id>-<mkdtemp suffix>`` in the
    root, ``pyairtable-data-<run id>-<suffix>`` on tmpfs."""
    stem = name.rsplit("-", 1)[0].removeprefix("pyairtable-")
    for kind in ("run-", "data-"):
        stem = stem.removeprefix(kind)
    return stem


class LeakCheck:
    """One owner's temp root, and what is left of what was started under it."""

    def __init__(self) -> None:
        # Not under pytest's own 0700 temp dir: PostgreSQL runs as another user when we are root.
        self.root = Path(tempfile.mkdtemp(prefix="pyairtable-test-"))
        self.root.chmod(0o755)
        closed = [str(p) for p in self.root.parents if not p.stat().st_mode & stat.S_IXOTH]
        # The local backend would put its run dirs elsewhere, where this check cannot see.
        assert not closed, f"TMPDIR must be reachable by other users; these are not: {closed}"
        self._created = _CreatedNames(self.root)
        self._shm_before = set(SHM.glob("pyairtable-*"))
        # before anything can carry the root; a second early, for the clocks' rounding
        self.since = _SINCE[str(self.root)] = _boot_clock() - 1

    def env(self) -> dict[str, str]:
        return {"PYAIRTABLE_TMPDIR": str(self.root), "TMPDIR": str(self.root)}

    def runs(self) -> set[str]:
        """The run id of every run that made a dir in the root so far."""
        return {_run_key(n) for n in self._created.read() if n.startswith("pyairtable-run-")}

    def tmpfs_dirs(self) -> list[Path]:
        runs = self.runs()
        return [
            p for p in set(SHM.glob("pyairtable-*")) - self._shm_before if _run_key(p.name) in runs
        ]

    def _owns_cwd(self, pid: int, runs: set[str] | None = None) -> str | None:
        """The service dir ``pid`` works in, if it is one of ours (servers run in their
        data dir; a removed one reads '<path> (deleted)')."""
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
        except OSError:
            return None
        prefixes = (
            f"{self.root}/",
            *(f"{SHM}/pyairtable-data-{run}-" for run in runs or self.runs()),
        )
        return cwd if cwd.startswith(prefixes) else None

    def processes(self) -> dict[int, str]:
        """PID -> what it is, for every live process of our runs: by the environment
        they started with, or by working in one of our run dirs."""
        own, runs = _own_variable(self.root), self.runs()
        found: dict[int, str] = {}
        for pid in _pids():
            if (environ := _environ(pid, self.since)) is None:
                continue
            if (run := _run_id(environ, own)) is not None:
                found[pid] = f"run {run}"
            elif (cwd := self._owns_cwd(pid, runs)) is not None:
                found[pid] = f"working in {cwd}"
        return found

    def service_pids(self, service: str) -> list[int]:
        """Live processes of ``service``: its own command, or a built-in server recipe
        (which works in ``<run dir>/<service>``)."""
        found = set(service_pids(service, self.root))
        for pid in self.processes():
            cwd = self._owns_cwd(pid)
            if cwd is not None:
                base = self.root if cwd.startswith(f"{self.root}/") else SHM
                parts = Path(cwd).relative_to(base).parts  # (run dir, service, ...)
                if parts[1:2] == (service,):
                    found.add(pid)
        return sorted(found)

    def is_own(self, pid: int) -> bool:
        return pid in marked_processes(self.root) or self._owns_cwd(pid) is not None

    def leftovers(self, processes: dict[int, str] | None = None) -> list[str]:
        """What outlived its run right now: live processes (``processes`` if just
        scanned), run dirs (logs are kept on purpose, for a post-mortem), and tmpfs data
        dirs of the runs seen in the root."""
        if processes is None:
            processes = self.processes()
        problems = [f"process {pid} ({what})" for pid, what in processes.items()]
        problems += [
            f"run dir {p.name}"
            for p in self.root.iterdir()
            if not p.name.endswith("-logs") and "-logs-" not in p.name
        ]
        problems += [f"tmpfs dir {p}" for p in self.tmpfs_dirs()]
        return problems

    def finish(self) -> list[str]:
        """The leftovers; then ends the processes among them and removes the dirs, so
        one failure does not cascade into the next test."""
        processes = self.processes()
        problems = self.leftovers(processes)
        if processes:  # scanned again: what they started meanwhile goes too
            for pid in self.processes():
                kill_own(pid, self.is_own)
        for path in self.tmpfs_dirs():
            shutil.rmtree(path, ignore_errors=True)
        self._created.close()
        shutil.rmtree(self.root, ignore_errors=True)
        _SINCE.pop(str(self.root), None)
        return problems


@contextlib.contextmanager
def leak_checked(monkeypatch: pytest.MonkeyPatch | None = None) -> Iterator[LeakCheck]:
    """Run the body with its own temp root, and fail if anything started in it outlives
    it. For fixtures wider than a test (their MonkeyPatch is their own)."""
    with contextlib.ExitStack() as stack:
        patch = monkeypatch or stack.enter_context(pytest.MonkeyPatch.context())
        check = LeakCheck()
        for key, value in check.env().items():
            patch.setenv(key, value)
        patch.setattr(tempfile, "tempdir", str(check.root))  # this process's own temp files
        try:
            yield check
        finally:
            problems = check.finish()
        assert not problems, f"outlived their owner: {problems}"
