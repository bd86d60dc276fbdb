"""The reaper: ends a run's services if pytest dies without stopping them (SIGKILL, OOM).

Started by the local backend in its own session, it reads commands on stdin, a pipe
from pytest. The kernel closes that pipe however pytest dies, so end-of-file without a
``done`` first means pytest is gone: no polling, no delay. Commands:

    pg <pgid> <start-ticks>    a process group to end
    unpg <pgid>                it was stopped normally
    dir <path>                 a temp dir to remove
    project <name>             a compose project whose containers to remove
    done                       clean exit: leave everything as it is
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

from .process import group_alive, proc_start_time

GRACE = 3.0


class ReaperClient:
    """pytest's end of the pipe: start a reaper, tell it what to end, say ``done``.

    A reaper killed by someone else must not stop a clean shutdown, so writes to a closed
    pipe are ignored; several threads may launch services, so writes are serialised."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "pytest_pyairtable.backends.reaper"],
            stdin=subprocess.PIPE,
            env=env,
            start_new_session=True,  # survives pytest's death, and its Ctrl-C
        )

    def tell(self, line: str) -> None:
        with self._lock:
            stdin = self._process.stdin
            if stdin is not None and not stdin.closed:
                with contextlib.suppress(OSError):
                    stdin.write(line.encode() + b"\n")
                    stdin.flush()

    EXIT_TIMEOUT = 10.0

    def done(self) -> None:
        """A clean end: the reaper exits and leaves everything as it is. It has exited
        when this returns (one that cannot, e.g. stopped, is killed), so nothing of the
        run outlives pytest."""
        self.tell("done")
        with self._lock, contextlib.suppress(OSError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        try:
            self._process.wait(self.EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()  # our own child: everything it guarded is stopped already
            self._process.wait()


def remove_project(project: str) -> None:
    listing = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if listing.stdout.split():
        subprocess.run(
            ["docker", "rm", "-f", *listing.stdout.split()],
            capture_output=True,
            check=False,
            timeout=60,
        )


def reap(groups: dict[int, int], dirs: list[str]) -> None:
    # A group is still ours if its leader is gone (PIDs are not reused while the group
    # exists) or is the very process we started (same start time).
    ours = [g for g, ticks in groups.items() if proc_start_time(g) in (None, ticks)]
    for pgid in ours:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    while any(group_alive(g) for g in ours) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pgid in ours:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is pytest's to handle
    groups: dict[int, int] = {}
    dirs: list[str] = []
    projects: list[str] = []
    for line in sys.stdin:
        command, _, rest = line.rstrip("\n").partition(" ")
        if command == "pg":
            pgid, ticks = rest.split()
            groups[int(pgid)] = int(ticks)
        elif command == "unpg":
            groups.pop(int(rest), None)
        elif command == "dir":
            dirs.append(rest)
        elif command == "project":
            projects.append(rest)
        elif command == "done":
            return 0
    reap(groups, dirs)
    for project in projects:
        remove_project(project)
    return 0


if __name__ == "__main__":
    sys.exit(main())
