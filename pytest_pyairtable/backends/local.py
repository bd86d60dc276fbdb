"""The local backend: every service is a process on this machine, no Docker needed.

A service runs its ``x-pyairtable.local.command``; a ``postgres*``/``redis*`` image
without one runs from a built-in recipe. Output goes to ``<logs_dir>/<service>.log``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError, PrerequisiteError, PyAirtableError
from ..model.spec import ServiceSpec
from .process import LocalProcess, parse_signal, proc_start_time
from .reaper import ReaperClient
from .recipes import RECIPES, LaunchPlan, find_binary

RUN_ID_VAR = "PYAIRTABLE_RUN_ID"


def _reachable_base(base: str) -> str:
    """A temp base that an unprivileged server user can traverse.

    As root we run PostgreSQL as another user, which cannot enter a 0700 directory such
    as pytest's /tmp/pytest-of-root; then fall back to the system temp dir.
    """
    if os.geteuid() != 0:
        return base
    path = Path(base).resolve()
    if all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents)):
        return base
    return "/tmp" if os.path.isdir("/tmp") else base


def service_ports(svc: ServiceSpec) -> set[int]:
    """Host ports a service will listen on: published ports and its probe's port."""
    ports = {m.host or m.container for m in svc.ports}
    target = urlsplit(svc.probe.target) if "://" in svc.probe.target else None
    if target is not None and target.hostname in ("127.0.0.1", "localhost") and target.port:
        ports.add(target.port)
    if svc.probe.kind == "tcp":
        ports.add(int(svc.probe.target.rpartition(":")[2]))
    return ports


def check_ports_free(svc: ServiceSpec) -> None:
    taken = []
    for port in sorted(service_ports(svc)):
        with socket.socket() as probe:
            # SO_REUSEADDR: a port in TIME_WAIT from our own last stop is free to use.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                taken.append(port)
    if taken:
        ports = ", ".join(map(str, taken))
        raise PrerequisiteError(
            f"port {ports} is already in use by another process. Fix: stop that process "
            "(a kept stack: pyairtable down), or publish the service on another port."
        )


def preflight(services: Sequence[ServiceSpec]) -> list[str]:
    """What is missing to run these services locally: binaries, commands, free ports."""
    problems = []
    for svc in services:
        try:
            check_ports_free(svc)
            if svc.local.command:
                if (
                    shutil.which(
                        svc.local.command[0], path=path_with_python(os.environ.get("PATH", ""))
                    )
                    is None
                ):
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


def path_with_python(path: str) -> str:
    """The test run's own interpreter and tools first, as in its virtualenv."""
    return os.pathsep.join([os.path.dirname(sys.executable), path])


def _tmpfs_dir(run_id: str) -> Path | None:
    shm = Path("/dev/shm")
    if os.environ.get("PYAIRTABLE_TMPFS", "1") in ("0", "no") or not os.access(shm, os.W_OK):
        return None
    remove_stale_runs(shm)
    path = Path(tempfile.mkdtemp(prefix=f"pyairtable-{run_id}-", dir=shm))
    path.chmod(0o755)  # servers run as an unprivileged user must reach their dirs
    return path


def remove_stale_runs(base: Path) -> None:
    """Remove run dirs of runs whose process is gone (pytest and its reaper both killed)."""
    for path in base.glob("pyairtable-*-*"):
        pid = path.name.split("-")[1]
        if path.name.endswith("-logs") or not pid.isdigit() or not path.is_dir():
            continue
        if proc_start_time(int(pid)) is None:
            shutil.rmtree(path, ignore_errors=True)


class LocalService:
    def __init__(self, process: LocalProcess, stop_signal: signal.Signals) -> None:
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


class LocalBackend:
    name = "local"
    owns_services = True

    def __init__(
        self,
        *,
        run_id: str,
        logs_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        **_: object,  # options meant for other backends
    ) -> None:
        self.run_id = run_id
        base = _reachable_base(os.environ.get("PYAIRTABLE_TMPDIR") or tempfile.gettempdir())
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"pyairtable-{run_id}-", dir=base))
        self.run_dir.chmod(0o755)  # servers run as an unprivileged user must reach their dirs
        # Logs live beside the run dir, not in it: they outlive a failed run for a post-mortem.
        self._own_logs = logs_dir is None
        self.logs_dir = logs_dir or Path(base) / f"pyairtable-{run_id}-logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_runs(Path(base))
        self.environ = dict(os.environ if environ is None else environ)
        self._reaper = ReaperClient({**self.environ, RUN_ID_VAR: run_id})
        self._reaper.tell(f"dir {self.run_dir}")
        # Servers' data on tmpfs: initdb and PostgreSQL's writes are disk-bound here.
        self.data_dir = _tmpfs_dir(run_id) or self.run_dir
        if self.data_dir != self.run_dir:
            self._reaper.tell(f"dir {self.data_dir}")

    def plan(self, svc: ServiceSpec) -> LaunchPlan:
        log_path = self.log_path(svc.name)
        if svc.local.command:
            return LaunchPlan(list(svc.local.command))
        recipe = RECIPES.get(svc.image_kind)
        if recipe:
            return recipe(svc, self.data_dir / svc.name, log_path)
        raise ConfigError(
            f"service '{svc.name}' has no way to run as a local process "
            f"(image {svc.image or 'none'!r} has no built-in recipe). "
            "Fix: add `x-pyairtable: {local: {command: [...]}}` to it, or use "
            "--pyairtable-backend=compose."
        )

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def launch(self, svc: ServiceSpec) -> LocalService:
        check_ports_free(svc)
        plan = self.plan(svc)
        plan.prepare()
        env = {**self.environ, **svc.environment, **svc.local.env, **plan.env}
        env["PATH"] = path_with_python(env.get("PATH", os.defpath))
        env[RUN_ID_VAR] = self.run_id
        env["PYAIRTABLE_SERVICE"] = svc.name
        where = f"service '{svc.name}'"
        stop_signal = parse_signal(svc.stop_signal, plan.stop_signal, where)
        process = LocalProcess(
            svc.name,
            plan.argv,
            env=env,
            cwd=plan.cwd or svc.local.cwd,
            log_path=self.log_path(svc.name),
            user=plan.user,
        )
        if process.start_ticks is not None:
            self._reaper.tell(f"pg {process.pid} {process.start_ticks}")
        return LocalService(process, stop_signal)

    def close(self, *, failed: bool = False, keep: bool = False) -> None:
        """Remove the run's temp dir, and its logs unless the run failed or they were asked
        for; with ``keep``, leave all of it to the kept stack (and tell the reaper so)."""
        self._reaper.done()
        if keep:
            return
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self._own_logs and not failed:
            shutil.rmtree(self.logs_dir, ignore_errors=True)
