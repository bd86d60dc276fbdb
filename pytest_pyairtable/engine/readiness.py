"""The readiness gate: when a launched service counts as ready, within which budget,
and the error that says why not.

A service is ready when its probe passes. A job is different: a one-shot service
(others await it with ``service_completed_successfully``, or it is marked
``x-pyairtable: {job: true}``) is ready when it has exited 0, also when only its own
fixture is requested; it gets the start-up's whole budget, as a migration may be slow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model.spec import ServiceSpec, StackSpec
from ..probes.checks import Probe, ProbeContext, ProbeUnusable
from ..probes.waiting import MAX_WAIT, Gone, port_watch, wait_ready
from ..support.errors import ServiceError, ServiceExitedError, ServiceTimeoutError
from ..support.files import open_read
from ..support.redact import Redactor

if TYPE_CHECKING:
    from ..backends.base import Backend, Running
    from .run import ServiceRun

LOG_TAIL_LINES = 20
HELD_FIX = (
    "stop that process (a kept stack: pyairtable down), publish the service on another "
    "port, or let --pyairtable-free-ports choose free ones"
)


class Cancelled(Exception):
    """The run is stopping: whatever was waited for no longer matters."""


@dataclass(frozen=True)
class Timing:
    """The seed's knobs. ``health_check_timeout`` None means: from each healthcheck."""

    health_check_timeout: float | None = None
    default_timeout: float = 120.0
    max_startup_time: float = 600.0
    tier_wait_time: float = 0.0
    service_startup_delay: float = 0.0
    poll_cap: float = MAX_WAIT


@dataclass(frozen=True)
class Verdict:
    completed: bool  # a one-shot service that exited 0, rather than one that is up
    details: dict[str, Any]


def jobs(stack: StackSpec) -> set[str]:
    """The one-shot services: marked as jobs, or awaited for their completion."""
    awaited = {
        d.name
        for s in stack.services.values()
        for d in s.depends_on
        if d.condition == "service_completed_successfully"
    }
    return {n for n, s in stack.services.items() if s.job or n in awaited}


def tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> list[str]:
    if path is None or not path.exists():
        return []
    try:
        f = open_read(path)
    except OSError:
        return []
    with f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 64 * 1024))
        return f.read().decode(errors="replace").splitlines()[-lines:]


ProbeFactory = Callable[[ServiceSpec, ProbeContext], Probe]
# What a job's readiness is: its probe (process alive, derived) is never asked.
JOB_READY = "exit code 0 (a one-shot job)"


class Gate:
    """Decides when each launched service is ready; one per orchestrator."""

    def __init__(
        self,
        *,
        stack: StackSpec,
        backend: Backend,
        timing: Timing,
        probe_factory: ProbeFactory,
        redact: Redactor,
        closing: Callable[[], bool],
        awaited: Callable[[str], bool] = lambda name: True,
    ) -> None:
        self.backend = backend
        self.awaited = awaited
        self.timing = timing
        self.probe_factory = probe_factory
        self.redact = redact
        self.closing = closing
        self.jobs = jobs(stack)

    def probe_for(
        self, spec: ServiceSpec, running: Running, attempt_timeout: float
    ) -> tuple[Probe, bool]:
        """The one choice of a started service's probe: its backend's own (an engine's
        health), else the factory's (a hook's, else the built-in one); and whether it
        was the backend's."""
        ctx = ProbeContext(
            running.log_path,
            attempt_timeout,
            env=self.backend.command_env(spec),
            cancelled=self.closing,
            log_offset=running.log_start,
            awaited=lambda: self.awaited(spec.name),
        )
        own = self.backend.probe(spec, running, ctx)
        return (own, True) if own is not None else (self.probe_factory(spec, ctx), False)

    def error(
        self, kind: type[ServiceError], run: ServiceRun, cause: str, fix: str = ""
    ) -> ServiceError:
        """A service's error with its probe, last probe error and log tail, redacted."""
        log_path = run.running.log_path if run.running else None
        if run.running is not None:
            run.running.sync_logs()  # logs that reach the file late
            restarted = run.running.policy_restarts()
            if restarted:  # a restart loop: not hidden behind a timeout
                cause += (
                    f" (its restart policy, {run.spec.restart.mode}, started it again "
                    f"{len(restarted)} times; last exit code {restarted[-1][1]})"
                )
        return kind(
            run.name,
            cause,
            probe=JOB_READY if run.name in self.jobs else self.redact(run.spec.probe.describe()),
            last_error=run.last_probe_error,
            log_tail=[self.redact(line) for line in tail(log_path)],
            log_path=str(log_path) if log_path else "",
            fix=fix,
        )

    def _budget(self, spec: ServiceSpec, deadline: float) -> tuple[float, float, bool]:
        """(how long to keep probing, the longest pause between attempts, whether the
        start-up deadline rather than the service's own bound set the first)."""
        check = spec.healthcheck
        if self.timing.health_check_timeout is not None:
            budget = self.timing.health_check_timeout
        elif check is not None and check.test is not None:
            budget = check.start_period + check.retries * check.interval
        else:
            budget = self.timing.default_timeout
        cap = self.timing.poll_cap
        if check is not None:  # never sparser than the engine's own checks would be
            cap = min(cap, check.interval)
            if check.start_period:  # start_interval: the engine's cadence while starting
                cap = min(cap, check.start_interval)
        left = max(0.0, deadline - time.monotonic())
        return min(budget, left), cap, left < budget

    def wait(
        self,
        run: ServiceRun,
        running: Running,
        deadline: float,
        on_attempt: Callable[[int, str | None], None],
    ) -> Verdict:
        """Until ``run`` is ready (or, for a job, has exited 0); raises its ServiceError."""
        if run.name in self.jobs:
            return self._await_exit(run, running, deadline)
        spec = run.spec
        check = spec.healthcheck
        probe, own = self.probe_for(spec, running, min(check.timeout, 5.0) if check else 2.0)
        # a backend's own probe brings its own watch (or none); else the spec's port
        watch = probe.watch if own else port_watch(spec.probe.kind, spec.probe.target)
        budget, cap, by_deadline = self._budget(spec, deadline)

        def alive() -> str | None:
            if self.closing():
                raise Cancelled
            code = running.poll()
            return None if code is None else f"exited with code {code}"

        try:
            outcome = wait_ready(
                probe,
                budget=budget + probe.extra_budget,
                cap=cap,
                alive=alive,
                on_attempt=on_attempt,
                watch=watch,
                rest=probe.rest,
            )
        except Gone as gone:
            if not gone.exited:
                raise self.error(ServiceError, run, gone.reason) from None
            if running.poll() == 0 and spec.probe.kind == "started":
                return Verdict(True, {})  # nothing to probe, and it finished cleanly
            held = self.backend.identity_problem(spec, running)  # e.g. it could not bind
            cause = f"{gone.reason} while starting" + (f"; {self.redact(held)}" if held else "")
            raise self.error(ServiceExitedError, run, cause, fix=HELD_FIX if held else "") from None
        except TimeoutError:
            raise self._timeout(run, budget, by_deadline) from None
        except ProbeUnusable as unusable:  # waiting longer cannot help
            raise self.error(ServiceError, run, unusable.cause, fix=unusable.fix) from None
        finally:
            probe.close()
        # Ready means ours: what answered must be the service this run started, checked
        # once, now (another run's server on the same fixed port answers just as well).
        problem = self.backend.identity_problem(spec, running)
        if problem is not None:
            raise self.error(ServiceError, run, self.redact(problem), fix=HELD_FIX)
        return Verdict(False, outcome.details)

    def _timeout(self, run: ServiceRun, budget: float, by_deadline: bool) -> ServiceError:
        if by_deadline:
            limit = self.timing.max_startup_time
            cause = f"was not ready when MAX_STARTUP_TIME ({limit:g}s) ran out for the start-up"
            fix = "check its log below; if the stack is only slow, raise MAX_STARTUP_TIME"
        else:
            cause = f"did not become ready within {budget:.1f}s"
            fix = (
                "check its log below; if it is only slow, raise healthcheck "
                "start_period/retries or HEALTH_CHECK_TIMEOUT"
            )
        return self.error(ServiceTimeoutError, run, cause, fix=fix)

    def _await_exit(self, run: ServiceRun, running: Running, deadline: float) -> Verdict:
        while (code := running.wait(0.05)) is None:
            if self.closing():
                raise Cancelled
            if time.monotonic() >= deadline:
                limit = self.timing.max_startup_time
                raise self.error(
                    ServiceTimeoutError,
                    run,
                    f"was still running when MAX_STARTUP_TIME ({limit:g}s) ran out",
                    fix="it is a one-shot job, ready once it exits 0: check its log below; "
                    "if it is only slow, raise MAX_STARTUP_TIME",
                )
        if code != 0:
            raise self.error(
                ServiceExitedError,
                run,
                f"exited with code {code}",
                fix="it is a one-shot job (awaited with service_completed_successfully, "
                "or x-pyairtable.job): it must exit 0",
            )
        return Verdict(True, {})
