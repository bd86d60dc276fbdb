"""Keeps the kernel's cgroup moves fast while a boot has launches to come.

Each move of a process into a cgroup (v2) waits for an RCU grace period (~8 ms here)
unless another move came in the last ~12 ms: the kernel's lock stays in its fast state
for one grace period after its last writer. A chain launches a service every half
second or so, so each service's shell joins its cgroup cold, on the critical path.

While launches are to come, a keeper writes its own PID into its own cgroup every
10 ms: a move that moves nothing, and keeps that state warm for the launches' real
moves (~0.2 ms instead of ~8 ms, measured). It is bash looping on builtins (no process
started per round; ~0.1 ms of CPU a round), in a ``.warmth`` cgroup of the run (a dot:
not counted among the run's own processes). It ends when its standard input closes:
once the boot's launches are done, at the run's end, or when this process dies.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

# $1: the keeper's cgroup.procs. `read -t` on an input that never gets a line is the
# sleep (>128: timed out; 1: its end). At most a minute of it: a boot whose last launch
# never comes (a job restored from its snapshot instead) is not kept warm all session.
KEEP = (
    'exec 3>"$1" && echo $$ >&3 || exit 0; n=0; '
    "while [ $n -lt 6000 ] && { read -r -t 0.01 _ || [ $? -gt 128 ]; }; "
    "do echo $$ >&3 || exit 0; n=$((n + 1)); done"
)


class Warmth:
    """The keeper of one run's cgroup (``run_dir``), kept while launches are expected;
    any method may be called from any thread."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".warmth"
        self._lock = threading.Lock()
        self._expected: set[str] = set()
        self._keeper: subprocess.Popen[bytes] | None = None
        self._ending: list[subprocess.Popen[bytes]] = []

    def expect(self, names: Iterable[str]) -> None:
        """These services' launches are to come: kept warm until the last of them."""
        with self._lock:
            self._expected.update(names)
            if self._expected and self._keeper is None:
                self._keeper = self._start()

    def launched(self, name: str) -> None:
        """One launch done (or failed); the last one expected ends the keeper."""
        with self._lock:
            self._expected.discard(name)
            if self._expected or self._keeper is None:
                return
            keeper, self._keeper = self._keeper, None
            self._ending.append(keeper)
        _end_input(keeper)

    def _start(self) -> subprocess.Popen[bytes] | None:
        bash = shutil.which("bash")
        if bash is None:
            return None  # launches join cold, as without a keeper
        try:
            self.path.mkdir(exist_ok=True)
            return subprocess.Popen(
                [bash, "-c", KEEP, "keeper", str(self.path / "cgroup.procs")],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C at the terminal is pytest's alone
            )
        except OSError:
            return None

    def end(self) -> None:
        """The run ends: no launch is expected any more; every keeper ends, reaped."""
        with self._lock:
            self._expected.clear()
            if self._keeper is not None:
                self._ending.append(self._keeper)
            ending, self._ending, self._keeper = self._ending, [], None
        for keeper in ending:
            _end_input(keeper)
            try:
                keeper.wait(5)
            except subprocess.TimeoutExpired:
                keeper.kill()
                keeper.wait()


def _end_input(keeper: subprocess.Popen[bytes]) -> None:
    """The end of its input: the keeper exits."""
    if keeper.stdin is not None:
        with contextlib.suppress(OSError):
            keeper.stdin.close()
