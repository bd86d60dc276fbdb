"""A service's processes on this machine: launched by us (a child in its own process
group and, where the machine allows it, its own cgroup; output to a log file) or adopted
from a kept stack's record. Either way they are stopped by the one stopper (see
stopper.py), which also ends what escaped the group.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..support.errors import ConfigError, PrerequisiteError, StopError
from ..support.files import open_private
from . import cgroups, sigdefaults, stopper
from .procfs import is_running, pid_alive, proc_start_time

__all__ = [
    "AdoptedProcess",
    "LocalProcess",
    "ServiceProcesses",
    "is_running",
    "let_go",
    "parse_signal",
    "pid_alive",
    "proc_start_time",
]


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


# Linux's bound on one argument or one NAME=VALUE string, its NUL included (32 pages).
MAX_ARG_STRLEN = 32 * 4096


def _nul_culprit(argv: Sequence[str], env: Mapping[str, str]) -> str:
    for key, value in env.items():
        if "\0" in key or "\0" in value:
            return f"variable {key.split(chr(0))[0]!r}"
    for n, arg in enumerate(argv):
        if "\0" in arg:
            return f"argument {n} of its command"
    return "its command or environment"


def _exec_fix(exc: OSError, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> str:
    if exc.errno != errno.E2BIG:
        return f"check x-pyairtable.local.command and cwd ({cwd})"
    # The kernel refuses one string over MAX_ARG_STRLEN, and all of them over ARG_MAX.
    for key, value in env.items():
        size = len(f"{key}={value}".encode(errors="surrogateescape")) + 1
        if size > MAX_ARG_STRLEN:
            return (
                f"variable {key!r} is {size} bytes, over the {MAX_ARG_STRLEN} bytes (128 KiB) "
                "Linux passes in one variable; shorten it, or pass the value in a file"
            )
    for n, arg in enumerate(argv):
        size = len(arg.encode(errors="surrogateescape")) + 1
        if size > MAX_ARG_STRLEN:
            return (
                f"argument {n} of its command is {size} bytes, over the {MAX_ARG_STRLEN} bytes "
                "(128 KiB) Linux passes in one argument; shorten it, or pass it in a file"
            )
    size = sum(len(k) + len(v) + 2 for k, v in env.items())
    return (
        f"its environment ({len(env)} variables, {size} bytes) and command line are over "
        "what the system passes to a process; set fewer or shorter variables "
        "(environment, env_file)"
    )


class ServiceProcesses:
    """A service's process group and what escaped it, found by its run's marker."""

    def __init__(self, target: stopper.Target, log_path: Path | None) -> None:
        self._target = target
        self.log_path = log_path

    @property
    def target(self) -> stopper.Target:
        """What stops it: its group, start time and cgroup."""
        return self._target

    @property
    def pid(self) -> int:
        assert self._target.pgid is not None
        return self._target.pgid

    @property
    def start_ticks(self) -> int | None:
        return self._target.ticks  # (as the group: known without the cgroup's settling)

    def pids(self) -> set[int]:
        """Its processes now: its cgroup's, where it has one (complete, and cheap to
        read), else what the stopper finds of it."""
        if self.target.cgroup:
            return cgroups.pids_in(self.target.cgroup)
        return set(stopper.find([self.target]))

    def poll(self) -> int | None:
        raise NotImplementedError

    def _reap(self) -> None:
        """Collect our own child's exit status (nothing to do for an adopted one)."""

    def _collect(self) -> None:
        """Once all of it is gone: our own child's exit status, waited for."""

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        pause = 0.001
        while (code := self.poll()) is None and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return code

    def signal_group(self, sig: signal.Signals) -> bool:
        """Signal everything of it; False if nothing of it is left."""
        return stopper.signal([self.target], sig)

    def stop(self, sig: signal.Signals, grace: float) -> int | None:
        """``sig`` to all of it, SIGKILL after ``grace``; returns once all of it is gone."""
        left = stopper.end([self.target], sig, grace, reap=self._reap)
        if left:
            self._reap()
            raise StopError(
                f"service '{self.target.service}': processes {sorted(left)} did not exit "
                "after SIGKILL (stuck in the kernel, or owned by another user)."
            )
        self._collect()
        if self.target.cgroup:
            cgroups.remove(self.target.cgroup)  # empty now: the kernel removes only that
        return self.poll()

    def kill(self) -> None:
        self.stop(signal.SIGKILL, 0)


# Children left running for a kept stack: referenced until this process exits, so
# Popen does not warn that it was collected while its child still runs (it is meant to).
_LET_GO: list[subprocess.Popen[bytes]] = []


def let_go(popen: subprocess.Popen[bytes]) -> None:
    """``popen``'s child outlives this run on purpose (a kept stack's)."""
    if not _LET_GO:
        atexit.register(_reap_let_go)
    _LET_GO.append(popen)


def _reap_let_go() -> None:
    """At exit, collect those stopped since (by `pyairtable down` from another process):
    our zombies until then, and a Popen with no exit status warns when it is collected."""
    for popen in _LET_GO:
        popen.poll()


class LocalProcess(ServiceProcesses):
    """A process we launch, in its own process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        user: str | None = None,
        run_id: str = "",
        cgroup: cgroups.ServiceCgroup | None = None,
        on_cgroup_problem: Callable[[str], None] = lambda problem: None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self._cgroup_problem: str | None = None
        self._on_cgroup_problem = on_cgroup_problem
        self._settling = threading.Lock()
        launch = sigdefaults.with_default_signals(self.argv)  # as a container starts
        stdin: int = subprocess.DEVNULL
        with contextlib.ExitStack() as unstarted, contextlib.ExitStack() as held:
            if cgroup is not None:  # held locked until it has joined, or not started
                unstarted.callback(cgroup.let_go)
            log = held.enter_context(open_private(log_path, "ab"))
            try:
                if cgroup is not None or launch is not self.argv:
                    # The shell that joins the cgroup (or env) would only exit 127 for a
                    # missing command: it is looked for here, as Popen itself would.
                    _check_runnable(self.argv[0], env, cwd)
                if cgroup is not None:
                    stdin = cgroup.procs
                    launch = cgroups.join_command(launch)
                self.popen = subprocess.Popen(
                    launch,
                    stdin=stdin,
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
            except ValueError:  # a NUL byte, which no argument or variable can carry
                raise PrerequisiteError(
                    f"service '{name}': cannot run {self.argv[0]!r}: {_nul_culprit(argv, env)} "
                    "holds a NUL byte, which no process's arguments or environment can carry "
                    "(an env_file such as /proc/self/environ is read as one value). Fix: "
                    "remove the NUL bytes, or name a plain text file as the env_file."
                ) from None
            except OSError as exc:
                raise PrerequisiteError(
                    f"service '{name}': cannot run {self.argv[0]!r}: {exc.strerror}. "
                    f"Fix: {_exec_fix(exc, self.argv, env, cwd)}."
                ) from None
            unstarted.pop_all()
        pid = self.popen.pid
        # Whether it joined is asked when first needed (its stop, its pids, its record):
        # by then its shell has long tried, where waiting here cost each launch the
        # shell's start (10-20 ms while the run's other threads poll), on the chain's
        # critical path.
        self._joining = cgroup
        if cgroup is not None:
            cgroup.hand_over()
        where = str(cgroup.path) if cgroup is not None else None
        super().__init__(
            stopper.Target(run_id, name, pid, proc_start_time(pid), cgroup=where), log_path
        )

    @property
    def target(self) -> stopper.Target:
        self._settle()
        return self._target

    @property
    def cgroup_problem(self) -> str | None:
        """Why it is not tracked by the cgroup it was given (it could not join), or None."""
        self._settle()
        return self._cgroup_problem

    def _settle(self) -> None:
        """Learn, once, whether the launch joined its cgroup; where it did not, it is
        tracked without (its group, markers and tree) and ``on_cgroup_problem`` says why."""
        if self._joining is None:
            return
        with self._settling:
            cgroup, self._joining = self._joining, None
            if cgroup is None:
                return  # another thread settled it meanwhile
            problem = cgroup.joined(self._target.pgid or 0)
            if problem is not None:
                self._cgroup_problem = problem
                self._target = dataclasses.replace(self._target, cgroup=None)
                self._on_cgroup_problem(problem)

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        return stopper.wait_child(self.popen, 1e9 if timeout is None else timeout)

    def _reap(self) -> None:
        self.popen.poll()

    def _collect(self) -> None:
        # Gone in /proc can still be a moment before the kernel lets its parent reap it
        # (e.g. while a killed leader's threads exit): a poll then says "running".
        stopper.wait_child(self.popen, stopper.KILL_WAIT)

    def let_go(self) -> None:
        """It outlives this run (a kept stack); a later process adopts it."""
        let_go(self.popen)


def _check_runnable(command: str, env: Mapping[str, str], cwd: Path) -> None:
    """Raise what Popen raises for a command that is missing or not executable."""
    if os.sep in command:
        candidates = [cwd / command]
    else:
        candidates = [Path(d or ".", command) for d in os.get_exec_path(dict(env))]
    for path in candidates:
        if path.is_file():
            if os.access(path, os.X_OK):
                return
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), command)


class AdoptedProcess(ServiceProcesses):
    """A kept stack's service, found again from its record: not our child, so its exit
    code is the recorded one (a completed job's), or -1 when it ended unseen."""

    def __init__(self, target: stopper.Target, log_path: Path | None, exit_code: int | None):
        super().__init__(target, log_path)
        self.exit_code = exit_code

    def poll(self) -> int | None:
        if is_running(self.pid, self.start_ticks):
            return None
        return self.exit_code if self.exit_code is not None else -1
