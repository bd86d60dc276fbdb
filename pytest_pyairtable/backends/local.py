"""The local backend: every service is a process on this machine, no Docker needed.

A service runs its ``x-pyairtable.local.command``; a ``postgres*``/``redis*`` image
without one runs from a built-in recipe. Output goes to ``<logs_dir>/<service>.log``.
The run's directories carry ownership markers (see markers.py); a kept stack is
recorded as its process groups with their start times, its cgroups, and its directories.
What a service starts is tracked by a cgroup per run where the machine allows it (see
cgroups.py), else by process groups, run markers and the process tree, with pytest as
the child subreaper of what its services orphan.

(Over 350 lines: the backend's whole life, from its dirs and tracking to a kept
stack's reattach, reads in one place; ports are hostports.py's, tracking cgroups.py's.)
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model.spec import ServiceSpec
from ..support.errors import ConfigError, PrerequisiteError, PyAirtableError
from ..support.files import create_private, open_private
from . import cgroups, markers, portclaims, stopper
from .base import (
    BackendOptions,
    BaseBackend,
    BaseRunning,
    HeldPorts,
    Running,
    ServerData,
    log_size,
)
from .cgroupwarmth import Warmth
from .environment import path_with_python, service_environment
from .hostports import answered_by_others, check_ports_free, service_ports
from .markers import SHM, Owner, temp_base
from .process import AdoptedProcess, LocalProcess, ServiceProcesses, parse_signal
from .procfs import RUN_ID_VAR, SERVICE_VAR
from .reaper import ReaperClient
from .recipes import RECIPES, LaunchPlan, find_binary
from .stopper import Target
from .supervise import Supervised

if TYPE_CHECKING:
    from .measure import ServiceCoverage

__all__ = ["RUN_ID_VAR", "LocalBackend", "LocalService", "check_ports_free", "preflight"]


def check_cwd(svc: ServiceSpec) -> None:
    """A missing working directory is said as such (Popen says "no such file", which
    reads as a missing command)."""
    cwd = svc.local.cwd
    if svc.local.command and not cwd.is_dir():
        what = "is not a directory" if cwd.exists() else "does not exist"
        raise PrerequisiteError(
            f"service '{svc.name}': its working directory {cwd} {what}. Fix: create it, or "
            "correct x-pyairtable.local.cwd (relative to the compose file's directory)."
        )


def local_block_problem(svc: ServiceSpec) -> str | None:
    """Why ``svc`` cannot run as a host process, with the block that would let it; None
    when it can (a local command, or a built-in recipe for its image)."""
    if svc.local.command or svc.image_kind in RECIPES:
        return None
    return (
        f"service '{svc.name}' has no way to run as a local process (no "
        f"x-pyairtable.local command, and image {svc.image or 'none'!r} has no built-in "
        "recipe: PostgreSQL and Redis images have one). Fix: say how to run it from your "
        "working tree, in the compose file or an override file:\n"
        f"  {svc.name}:\n"
        "    x-pyairtable:\n"
        "      local:\n"
        '        command: ["python", "-m", "your_service"]\n'
        "        cwd: .    # relative to the compose file\n"
        "or run it in a container: --pyairtable-backend=compose."
    )


def preflight(services: Sequence[ServiceSpec]) -> list[str]:
    """What is missing to run these services locally: binaries, commands, free ports."""
    problems = []
    for svc in services:
        try:
            check_ports_free(svc)
            check_cwd(svc)
            if svc.local.command:
                path = path_with_python(os.environ.get("PATH", ""))
                if shutil.which(svc.local.command[0], path=path) is None:
                    problems.append(
                        f"service '{svc.name}': command {svc.local.command[0]!r} not found"
                    )
            elif svc.image_kind == "postgres":
                find_binary("initdb", svc.name, hint="apt-get install postgresql")
            elif svc.image_kind == "redis":
                find_binary("redis-server", svc.name, hint="apt-get install redis-server")
            else:
                problems.append(f"service '{svc.name}' has no x-pyairtable.local.command")
        except PyAirtableError as exc:
            problems.append(
                str(exc) if str(exc).startswith("service") else f"service '{svc.name}': {exc}"
            )
    return problems


# What a launch without its cgroup is tracked by.
UNTRACKED = "it is tracked by its process group, the run's markers and the process tree"


def _tmpfs_dir(run_id: str, owner: Owner | None) -> Path | None:
    if os.environ.get("PYAIRTABLE_TMPFS", "1") in ("0", "no") or not os.access(SHM, os.W_OK):
        return None
    return markers.make_dir(SHM, f"pyairtable-data-{run_id}-", run_id, "data", owner)


def remove_stale_runs(base: Path, owner: Owner | None) -> list[Path]:
    """Remove what earlier runs of ``owner``'s stack left in ``base`` and /dev/shm,
    where provably stale, and the empty cgroups of runs killed with their reaper."""
    cgroups.sweep()
    portclaims.sweep()
    return markers.sweep([base, SHM], owner)


class LocalService(BaseRunning):
    def __init__(self, process: ServiceProcesses, stop_signal: signal.Signals) -> None:
        self.process = process
        self.stop_signal = stop_signal
        self.log_path = process.log_path

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        return self.process.wait(timeout)

    def stop(self, grace: float) -> int | None:
        return self.process.stop(self.stop_signal, grace)

    def kill(self) -> None:
        self.process.kill()

    def pause(self) -> None:
        self.process.signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.signal_group(signal.SIGCONT)

    def kept_state(self) -> dict[str, Any]:
        return {
            "pgid": self.process.pid,
            "ticks": self.process.start_ticks,
            "cgroup": self.process.target.cgroup,
            "stop_signal": int(self.stop_signal),
            "exit_code": self.poll(),
        }


class _NoReaper:
    """A reattached stack has no reaper: the process that kept it is gone."""

    def tell(self, line: str) -> None: ...

    def done(self) -> None: ...


class LocalBackend(BaseBackend):
    name = "local"
    owns_services = True
    where = "host"

    def __init__(
        self,
        *,
        run_id: str,
        logs_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        inherit_env: bool = False,
        port_holds: HeldPorts | None = None,
        coverage: ServiceCoverage | None = None,
        owner: Owner | None = None,
    ) -> None:
        super().__init__(inherit_env=inherit_env)
        self.owner = owner  # the stack whose directories these are (None: no clean-up's)
        self.coverage = coverage  # measured: a service run from its own command (measure.py)
        self.port_holds = port_holds  # --pyairtable-free-ports: released as services launch
        self.run_id = run_id
        self._base = base = temp_base()
        # What killed runs left: not needed before the first launch, so started after it
        # (before, it held the GIL the launch needs: 5-10 ms on the critical path).
        self._sweeper: threading.Thread | None = threading.Thread(
            target=remove_stale_runs, args=(base, owner), name="pyairtable-sweep", daemon=True
        )
        self._sweeper_lock = threading.Lock()
        self.run_dir = markers.make_dir(base, f"pyairtable-run-{run_id}-", run_id, "run", owner)
        # Logs live beside the run dir, not in it: they outlive a failed run for a post-mortem.
        # They hold whatever a service prints (secrets too): the tool's dir is 0700, and a
        # log file it creates is 0600. In a user's --pyairtable-logs-dir it knows which
        # files (and whether the dir) it made: `down --volumes` removes those, nothing else.
        self._own_logs = logs_dir is None
        self.logs_dir = logs_dir or base / f"pyairtable-{run_id}-logs"
        self._made_dir = not self.logs_dir.exists()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if self._own_logs:
            self.logs_dir.chmod(0o700)
            markers.claim(self.logs_dir, run_id, "logs", owner)
        self._own_files: list[str] = []
        self._remove_user_logs = False
        self.environ = dict(os.environ if environ is None else environ)
        self._launched: list[LocalProcess] = []
        self._supervised: list[Supervised] = []  # its services under a restart policy
        self._reaper: ReaperClient | _NoReaper = ReaperClient(run_id, self.environ)
        # Servers' data on tmpfs: initdb and PostgreSQL's writes are disk-bound here.
        self.data_dir = _tmpfs_dir(run_id, owner) or self.run_dir
        for path in self._own_dirs():
            self._reaper.tell(f"dir {path}")
        self._claims = portclaims.PortClaims(run_id)
        self.cgroup, self._tracking = cgroups.track(run_id)
        if self.cgroup is not None:
            self._reaper.tell(f"cgroup {self.cgroup.path}")
            markers.mark(self.run_dir, cgroup=str(self.cgroup.path))  # the run lives in it
        self._warmth = Warmth(self.cgroup.path) if self.cgroup is not None else None

    def tracking(self) -> str:
        return self._tracking

    def _run_pids(self) -> set[int]:
        if self.cgroup is not None:
            return cgroups.pids_in(self.cgroup.path)
        return set(stopper.find([Target(self.run_id)]))

    def identity_problem(self, svc: ServiceSpec, running: Running) -> str | None:
        """Whether the socket that answered the probe belongs to this service's own
        processes (its cgroup, or its group, markers and tree): another run's server on
        the same fixed port answers a probe just as well."""
        if isinstance(running, Supervised):  # under a restart policy: the launch it keeps
            running = running.current
        if not isinstance(running, LocalService):
            return None
        return answered_by_others(svc, running.process.pids, self._run_pids)

    @classmethod
    def create(cls, options: BackendOptions) -> LocalBackend:
        return cls(
            run_id=options.run_id,
            logs_dir=options.logs_dir,
            inherit_env=options.inherit_env,
            port_holds=options.port_holds,
            coverage=options.coverage,
            owner=Owner.of(options.compose_file),
        )

    @classmethod
    def preflight(cls, services: Sequence[ServiceSpec]) -> list[str]:
        return preflight(services)

    def _own_dirs(self) -> list[Path]:
        dirs = [self.run_dir, *([self.data_dir] if self.data_dir != self.run_dir else [])]
        return dirs + ([self.logs_dir] if self._own_logs else [])

    def plan(self, svc: ServiceSpec) -> LaunchPlan:
        log_path = self.log_path(svc.name)
        if svc.local.command:
            return LaunchPlan(list(svc.local.command))
        recipe = RECIPES.get(svc.image_kind)
        if recipe:
            return recipe(svc, self.data_dir / svc.name, log_path)
        raise ConfigError(local_block_problem(svc) or "")

    def server_data(self, svc: ServiceSpec) -> ServerData | None:
        from .serverdata import server_data

        return server_data(svc, self.data_dir / svc.name)

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def _stop_signal(self, svc: ServiceSpec, plan_default: signal.Signals) -> signal.Signals:
        return parse_signal(svc.stop_signal, plan_default, f"service '{svc.name}'")

    def prepare(self, services: Sequence[ServiceSpec]) -> None:
        """Launches are to come: their cgroup joins are kept fast until the last one
        (cgroupwarmth.py)."""
        if self._warmth is not None:
            self._warmth.expect(svc.name for svc in services)

    def launch(self, svc: ServiceSpec) -> Running:
        """The service started; under a restart policy, kept by a supervisor as the
        engine keeps a container (supervise.py)."""
        try:
            first = self._launch_once(svc)
        finally:
            if self._warmth is not None:
                self._warmth.launched(svc.name)
        if svc.restart.mode == "no":
            return first
        supervised = Supervised(svc.restart, first, lambda: self._launch_once(svc))
        self._supervised.append(supervised)  # (list.append: safe from several threads)
        return supervised

    def _launch_once(self, svc: ServiceSpec) -> LocalService:
        # Claimed first: two runs started at once would both find the ports free.
        self._claims.claim(svc.name, service_ports(svc))
        if self.port_holds is not None:
            self.port_holds.release(service_ports(svc))
        check_ports_free(svc, self.port_holds)
        check_cwd(svc)
        log_path = self.log_path(svc.name)
        if create_private(log_path) and not self._own_logs:
            self._own_files.append(log_path.name)
        plan = self.plan(svc)
        for note in plan.notes:
            self._note(log_path, note)
        plan.prepare()
        env = service_environment(svc, self.environ, inherit=self.inherit_env)
        env.update(plan.env)
        env[RUN_ID_VAR] = self.run_id
        env[SERVICE_VAR] = svc.name
        stop_signal = self._stop_signal(svc, plan.stop_signal)
        log_start = log_size(self.log_path(svc.name))
        if self.coverage is not None and svc.local.command:  # a built-in recipe: no Python
            env.update(self.coverage.environment(env, stop_signal))
        process = LocalProcess(
            svc.name,
            plan.argv,
            env=env,
            cwd=plan.cwd or svc.local.cwd,
            log_path=self.log_path(svc.name),
            user=plan.user,
            run_id=self.run_id,
            cgroup=self._launch_cgroup(svc.name, log_path),
            on_cgroup_problem=lambda why: self._note(
                log_path, f"service '{svc.name}': {why}; {UNTRACKED}"
            ),
        )
        if process.start_ticks is not None:
            self._reaper.tell(f"pg {process.pid} {process.start_ticks} {svc.name}")
            markers.note_group(self.run_dir, process.pid, process.start_ticks)
        self._launched.append(process)
        self._start_sweeper()
        service = LocalService(process, stop_signal)
        service.log_start = log_start
        return service

    def _note(self, log_path: Path, note: str) -> None:
        """For the run's summary (once) and in the service's log."""
        if note not in self.notices:
            self.notices.append(note)
        with open_private(log_path, "a") as log:
            log.write(f"pytest-pyairtable: {note}\n")

    def _launch_cgroup(self, name: str, log_path: Path) -> cgroups.ServiceCgroup | None:
        """A cgroup for one launch of ``name``; where none can be made (a kept stack's
        restarted by another user, say), the launch goes without, with a notice."""
        if self.cgroup is None:
            return None
        made = self.cgroup.service(name)
        if isinstance(made, str):
            self._note(log_path, f"service '{name}': {made}; {UNTRACKED}")
            return None
        return made

    def _start_sweeper(self) -> None:
        if self._sweeper is None:  # a reattached backend sweeps nothing
            return
        with self._sweeper_lock:  # services launch from several threads at once
            if self._sweeper.ident is None:
                self._sweeper.start()

    def close(self, *, keep_stack: Path | None = None, keep_logs: bool = False) -> None:
        """Remove the run's temp dirs, and its logs unless they are to be kept; with
        ``keep_stack``, leave all of it to the kept stack (and tell the reaper so)."""
        # No restart policy acts past the close: a service it started again would claim
        # its port anew, a claim held by this process until it exits (and launched into
        # dirs being removed, or a kept stack no record names).
        for supervised in list(self._supervised):
            supervised.let_go()
        if self._sweeper is not None and self._sweeper.ident is not None:
            self._sweeper.join(60)
        if self._warmth is not None:
            self._warmth.end()
        self._reaper.done()
        self._claims.release()  # stopped, or kept: its servers hold their ports now
        if keep_stack is not None:
            for path in self._own_dirs():
                markers.mark(path, kept=str(keep_stack))
            for process in self._launched:
                process.let_go()
            return
        if self.cgroup is not None:
            self.cgroup.end()  # its services are stopped: what is left there is strays
        markers.remove_dir(self.run_dir, self.run_id)
        markers.remove_dir(self.data_dir, self.run_id)
        if self._own_logs and keep_logs:
            self.notices.append(markers.retain_logs(self.logs_dir))
        elif self._own_logs:
            markers.remove_dir(self.logs_dir, self.run_id)
        elif self._remove_user_logs and not keep_logs:  # `down --volumes`, a user's dir
            markers.remove_files(self.logs_dir, self._own_files, self._made_dir)
        if not keep_logs and self._sweeper is not None:  # a run that went well: not `down`
            # an earlier failed run's logs served their post-mortem
            markers.sweep([self._base, SHM], self.owner, retained_too=True)

    # -- a kept stack ----------------------------------------------------------------

    def kept_state(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "data_dir": str(self.data_dir),
            "logs_dir": str(self.logs_dir),
            "own_logs": self._own_logs,
            "own_files": self._own_files,  # what it wrote in a user's logs dir
            "made_logs_dir": self._made_dir,
            "cgroup": str(self.cgroup.path) if self.cgroup is not None else None,
        }

    @classmethod
    def reattach(
        cls, state: Mapping[str, Any], run_id: str, *, volumes: bool = False
    ) -> LocalBackend:
        backend = cls.__new__(cls)
        BaseBackend.__init__(backend)
        backend.run_id = run_id
        backend.run_dir = Path(state["run_dir"])
        backend.data_dir = Path(state["data_dir"])
        backend.logs_dir = Path(state["logs_dir"])
        backend._own_logs = bool(state.get("own_logs", True))
        backend._own_files = [str(f) for f in state.get("own_files", [])]
        backend._made_dir = bool(state.get("made_logs_dir", False))
        backend._remove_user_logs = volumes
        backend.environ = dict(os.environ)
        backend.port_holds = None
        backend.coverage = None
        backend.owner = None  # it stops the kept stack; it sweeps nothing else
        backend._reaper = _NoReaper()
        backend._launched = []
        backend._supervised = []
        backend._sweeper = None
        backend._claims = portclaims.PortClaims(run_id)
        recorded = state.get("cgroup")
        backend.cgroup = cgroups.RunCgroup(Path(recorded)) if recorded else None
        backend._warmth = None  # a kept stack's launches come one at a time
        backend._tracking = ""
        return backend

    def adopt(self, svc: ServiceSpec, state: Mapping[str, Any]) -> LocalService:
        target = Target(
            self.run_id, svc.name, int(state["pgid"]), state.get("ticks"), state.get("cgroup")
        )
        process = AdoptedProcess(target, self.log_path(svc.name), state.get("exit_code"))
        return LocalService(process, signal.Signals(int(state["stop_signal"])))
