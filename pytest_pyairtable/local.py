"""The local backend: every service is a process on this machine, no Docker needed.

A service runs its ``x-pyairtable.local.command``; a ``postgres*``/``redis*`` image
without one runs from a built-in recipe. Output goes to ``<logs_dir>/<service>.log``.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigError
from .process import LocalProcess, parse_signal
from .recipes import RECIPES, LaunchPlan
from .spec import ServiceSpec

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


class LocalBackend:
    name = "local"

    def __init__(
        self,
        *,
        run_id: str,
        logs_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.run_id = run_id
        base = _reachable_base(os.environ.get("PYAIRTABLE_TMPDIR") or tempfile.gettempdir())
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"pyairtable-{run_id}-", dir=base))
        self.run_dir.chmod(0o755)  # servers run as an unprivileged user must reach their dirs
        # Logs live beside the run dir, not in it: they outlive a failed run for a post-mortem.
        self._own_logs = logs_dir is None
        self.logs_dir = logs_dir or Path(base) / f"pyairtable-{run_id}-logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.environ = dict(os.environ if environ is None else environ)

    def plan(self, svc: ServiceSpec) -> LaunchPlan:
        log_path = self.log_path(svc.name)
        if svc.local.command:
            return LaunchPlan(list(svc.local.command))
        recipe = RECIPES.get(svc.image_kind)
        if recipe:
            return recipe(svc, self.run_dir / svc.name, log_path)
        raise ConfigError(
            f"service '{svc.name}' has no way to run as a local process "
            f"(image {svc.image or 'none'!r} has no built-in recipe). "
            "Fix: add `x-pyairtable: {local: {command: [...]}}` to it, or use "
            "--pyairtable-backend=compose."
        )

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def launch(self, svc: ServiceSpec) -> LocalService:
        plan = self.plan(svc)
        plan.prepare()
        env = {**self.environ, **svc.environment, **svc.local.env, **plan.env}
        # The test run's own interpreter and tools come first, as in its virtualenv.
        env["PATH"] = os.pathsep.join(
            [os.path.dirname(sys.executable), env.get("PATH", os.defpath)]
        )
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
        return LocalService(process, stop_signal)

    def close(self, *, failed: bool = False) -> None:
        """Remove the run's temp dir, and its logs unless the run failed or they were asked for."""
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self._own_logs and not failed:
            shutil.rmtree(self.logs_dir, ignore_errors=True)
