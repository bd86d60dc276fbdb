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

import pytest

from pytest_pyairtable.backends.local import RUN_ID_VAR

SHM = Path("/dev/shm")


def _environ(pid: int | str) -> list[bytes] | None:
    """The environment ``pid`` started with, or None for a zombie or a gone process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return None
    return None if state == "Z" else environ


def _pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def marked_processes(root: Path | str | None = None) -> dict[int, str]:
    """PID -> run id of each live process a stack started under ``root`` (by default
    this test's PYAIRTABLE_TMPDIR), found by its environment. (A server that reuses its
    environment's memory, as redis-server does, is found by ``LeakCheck`` instead.)"""
    root = str(root if root is not None else os.environ.get("PYAIRTABLE_TMPDIR", ""))
    own = f"PYAIRTABLE_TMPDIR={root}".encode()
    marker = RUN_ID_VAR.encode() + b"="
    found: dict[int, str] = {}
    for pid in _pids():
        if (environ := _environ(pid)) and own in environ:
            for item in environ:
                if item.startswith(marker):
                    found[pid] = item[len(marker) :].decode()
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
    made and removed between two looks."""

    _IN_CREATE, _IN_MOVED_TO, _IN_Q_OVERFLOW = 0x100, 0x80, 0x4000

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if (
            self._fd < 0
            or libc.inotify_add_watch(
                self._fd, os.fsencode(path), self._IN_CREATE | self._IN_MOVED_TO
            )
            < 0
        ):
            raise OSError(ctypes.get_errno(), f"inotify on {path}")
        self.names: set[str] = set()

    def read(self) -> set[str]:
        while True:
            try:
                data = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                return self.names
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                assert not mask & self._IN_Q_OVERFLOW, "inotify queue overflowed"
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0")
                self.names.add(os.fsdecode(name))
                offset += 16 + length

    def close(self) -> None:
        os.close(self._fd)


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
        found = {pid: f"run {run}" for pid, run in marked_processes(self.root).items()}
        runs = self.runs()
        for pid in _pids():
            cwd = self._owns_cwd(pid, runs) if pid not in found else None
            if cwd is not None and _environ(pid) is not None:
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

    def leftovers(self) -> list[str]:
        """What outlived its run right now: live processes, run dirs (logs are kept on
        purpose, for a post-mortem), and tmpfs data dirs of the runs seen in the root."""
        problems = [f"process {pid} ({what})" for pid, what in self.processes().items()]
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
        problems = self.leftovers()
        for pid in self.processes():
            kill_own(pid, self.is_own)
        for path in self.tmpfs_dirs():
            shutil.rmtree(path, ignore_errors=True)
        self._created.close()
        shutil.rmtree(self.root, ignore_errors=True)
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
