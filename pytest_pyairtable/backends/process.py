"""A supervised local process: its own process group, output to a log file, and a stop
that signals the whole group, then SIGKILLs it after the grace period.

Every process carries ``PYAIRTABLE_RUN_ID`` in its environment, so a later run (or a
leak check) can find what a killed run left, and a PID is only signalled while its
start time still matches the one recorded at launch (PIDs are reused).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import ConfigError, PrerequisiteError


def proc_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` in clock ticks, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22, counted after the parenthesised command name (which may hold spaces).
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_running(pid: int, ticks: int) -> bool:
    """``pid`` is still the process started at ``ticks``, and not a zombie (an orphan's
    zombie lingers where PID 1 does not reap, as in many containers)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[19]) == ticks


def parse_signal(name: str | None, default: signal.Signals, where: str) -> signal.Signals:
    if not name:
        return default
    key = name.upper() if name.upper().startswith("SIG") else "SIG" + name.upper()
    try:
        return signal.Signals[key]
    except KeyError:
        raise ConfigError(
            f"{where}: unknown stop_signal {name!r}. Fix: use e.g. SIGTERM, SIGINT."
        ) from None


class LocalProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        with open(log_path, "ab") as log:
            try:
                self.popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    env=dict(env),
                    start_new_session=True,  # own process group: a stop reaches its children
                    user=user,
                )
            except FileNotFoundError:
                raise PrerequisiteError(
                    f"service '{name}': command not found: {self.argv[0]!r}. Fix: install it or "
                    "correct x-pyairtable.local.command."
                ) from None
            except OSError as exc:
                raise PrerequisiteError(
                    f"service '{name}': cannot run {self.argv[0]!r}: {exc.strerror}. "
                    f"Fix: check x-pyairtable.local.command and cwd ({cwd})."
                ) from None
        self.pid = self.popen.pid
        self.start_ticks = proc_start_time(self.pid)

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal_group(self, sig: signal.Signals) -> bool:
        """Signal the group; False if nothing of it is left."""
        if self.popen.returncode is None and proc_start_time(self.pid) != self.start_ticks:
            return False  # the PID now belongs to someone else
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def stop(self, sig: signal.Signals, grace: float) -> int | None:
        """Graceful stop of the group; SIGKILL after ``grace``. Returns the exit code."""
        if self.poll() is None:
            self.signal_group(sig)
            self.signal_group(signal.SIGCONT)  # a paused (SIGSTOP) service must see it too
            if self.wait(grace) is None:
                self.signal_group(signal.SIGKILL)
                self.wait(5)
        self._reap_group(grace)
        return self.poll()

    def kill(self) -> None:
        self.signal_group(signal.SIGKILL)
        self.wait(5)
        self._reap_group(0)

    def _reap_group(self, grace: float) -> None:
        """Children that outlived the leader still hold the group id: end them too."""
        deadline = time.monotonic() + min(grace, 2.0)
        while group_alive(self.pid):
            if time.monotonic() >= deadline:
                self._killpg(signal.SIGKILL)
                return
            time.sleep(0.01)

    def _killpg(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
