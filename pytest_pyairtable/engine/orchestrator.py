"""Start a stack as its DAG allows, gate on probes, stop in reverse, record a timeline.

Each service gets a thread that waits for its own dependencies' conditions, launches
it, and probes it; nothing waits on a tier barrier. All state changes happen under one
condition variable, so a waiter wakes the moment what it waits for happens. Stopping
runs in parallel too, each service as soon as everything that depends on it stopped.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..backends.base import Backend, Running
from ..errors import (
    DependencyFailedError,
    PyAirtableError,
    ServiceError,
    ServiceExitedError,
    ServiceTimeoutError,
)
from ..model import graph
from ..model.probespec import ProbeSpec
from ..model.spec import ServiceSpec, StackSpec
from ..probes.checks import Probe, ProbeContext, make_probe
from ..probes.waiting import MAX_WAIT, Gone, wait_ready
from ..redact import Redactor
from . import safety
from .events import Listener

LOG_TAIL_LINES = 20
ENGINE_GRACE = 30.0  # where a container engine judges health, it starts its clock later


class State(enum.Enum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"  # launched, not yet ready
    READY = "ready"
    COMPLETED = "completed"  # a one-shot service that exited 0
    FAILED = "failed"
    CANCELLED = "cancelled"  # the run stopped before it was started
    STOPPED = "stopped"


_STARTED = {State.RUNNING, State.READY, State.COMPLETED}
_SETTLED = {State.READY, State.COMPLETED, State.FAILED, State.CANCELLED, State.STOPPED}


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
class Handle:
    """What a test gets for a ready service."""

    name: str
    tier: int
    host: str
    port: int | None
    url: str
    ready_seconds: float
    log_path: Path | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServiceRun:
    spec: ServiceSpec
    tier: int
    state: State = State.PENDING
    running: Running | None = None
    error: PyAirtableError | None = None
    scheduled_at: float | None = None
    starting_at: float | None = None  # dependencies met; preparing (e.g. initdb) and launching
    launched_at: float | None = None
    ready_at: float | None = None
    stop_began: float | None = None
    stopped_at: float | None = None
    attempts: int = 0
    last_probe_error: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ready_seconds(self) -> float | None:
        """The service's own time to ready: from when it could start to when it was ready."""
        if self.ready_at is None or self.starting_at is None:
            return None
        return self.ready_at - self.starting_at

    @property
    def outcome(self) -> str:
        """How its start-up ended; still 'ready' after it was stopped at the end."""
        if self.state is State.STOPPED:
            return "ready" if self.ready_at is not None else "stopped"
        value: str = self.state.value
        return value


class _Cancelled(Exception):
    pass


def endpoint(spec: ServiceSpec) -> tuple[str, int | None, str]:
    """Host, port and URL a client uses: a DSN, a redis URL, or an http base URL."""
    probe: ProbeSpec = spec.probe
    if spec.url:
        parts = urlsplit(spec.url)
        return parts.hostname or "127.0.0.1", parts.port, spec.url
    if probe.kind in ("postgres", "redis", "http"):
        parts = urlsplit(probe.target)
        url = probe.target if probe.kind != "http" else f"{parts.scheme}://{parts.netloc}"
        return parts.hostname or "127.0.0.1", parts.port, url
    port = spec.host_port()
    if probe.kind == "tcp":
        host, _, p = probe.target.rpartition(":")
        return host or "127.0.0.1", int(p), f"tcp://{probe.target}"
    return "127.0.0.1", port, f"http://127.0.0.1:{port}" if port else ""


class Orchestrator:
    def __init__(
        self,
        stack: StackSpec,
        backend: Backend,
        *,
        timing: Timing | None = None,
        listener: Listener | None = None,
        probe_factory: Callable[[ServiceSpec, ProbeContext], Probe] | None = None,
    ) -> None:
        self.stack = stack
        self.backend = backend
        self.timing = timing or Timing()
        self.listener = listener or Listener()
        self.probe_factory = probe_factory or (lambda svc, ctx: make_probe(svc.probe, ctx))
        self.redact = Redactor(stack.secret_values())
        self.edges = {n: [d.name for d in s.depends_on] for n, s in stack.services.items()}
        self.tiers = graph.tiers(self.edges)
        self.runs: dict[str, ServiceRun] = {}
        self.t0 = time.monotonic()
        self._deadline: float | None = None
        self._cv = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- start -------------------------------------------------------------------

    def start(self, names: Iterable[str] | None = None) -> list[str]:
        """Start ``names`` and what they need (all services if None); do not wait."""
        roots = self.stack.require(names) if names is not None else list(self.stack.services)
        wanted = graph.closure(self.edges, roots)
        new = [n for n in graph.start_order(self.edges) if n in wanted and n not in self.runs]
        with self._cv:
            if self._closing:
                return []
            if self._deadline is None:
                self._deadline = time.monotonic() + self.timing.max_startup_time
            for name in new:
                self.runs[name] = ServiceRun(
                    self.stack.services[name], self.tiers[name], scheduled_at=self.now()
                )
        prepare = getattr(self.backend, "prepare", None)
        if prepare is not None and new:  # e.g. create containers ahead, off the critical path
            prepare([self.stack.services[n] for n in new])
        for name in new:
            thread = threading.Thread(
                target=self._bring_up,
                args=(self.runs[name],),
                name=f"pyairtable-{name}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()
        return new

    def wait(self, name: str) -> Handle:
        """Block until ``name`` is ready (starting it if needed); raise its error otherwise."""
        self.start([name])
        run = self.runs[name]
        with self._cv:
            self._cv.wait_for(lambda: run.state in _SETTLED)
        if run.state in (State.READY, State.COMPLETED):
            return self.handle(name)
        if run.error is not None:
            raise run.error
        raise ServiceError(name, "was cancelled because the stack is stopping")

    def settle(self, name: str, timeout: float) -> bool:
        """Wait up to ``timeout`` for ``name`` to be ready or failed; True once it is."""
        run = self.runs[name]
        with self._cv:
            return self._cv.wait_for(lambda: run.state in _SETTLED, timeout=timeout)

    # -- faults, for resilience tests ----------------------------------------------

    def restart(self, name: str, *, kill: bool = False) -> Handle:
        """Stop (or kill) ``name`` if it runs, start it again and wait until it is ready."""
        run = self.runs[name]
        if run.running is not None and run.running.poll() is None:
            if kill:
                run.running.kill()
            else:
                run.running.stop(run.spec.stop_grace_period)
        self._set(run, State.STARTING, starting_at=self.now(), error=None, ready_at=None)
        try:
            running = self.backend.launch(run.spec)
            self._set(run, State.RUNNING, running=running, launched_at=self.now())
            self._deadline = time.monotonic() + self.timing.max_startup_time
            self._gate(run, running)
        except ServiceError as exc:
            self._fail(run, exc)
            raise
        return self.handle(name)

    def heal(self, names: Iterable[str]) -> None:
        """Bring ``names`` back (resume, or restart what is not running), then wait until
        every ready service passes its probe again: dependents may have noticed."""
        for name in names:
            run = self.runs[name]
            if run.running is not None:
                run.running.resume()
            if (
                run.running is None
                or run.running.poll() is not None
                or run.state is not State.READY
            ):
                self.restart(name)
        for run in self.runs.values():
            if run.state is State.READY and run.running is not None:
                self._deadline = time.monotonic() + self.timing.max_startup_time
                self._gate(run, run.running)

    def check_alive(self, name: str) -> None:
        """Raise (once recorded, the same error each time) if a ready service has exited."""
        run = self.runs[name]
        if run.state is State.READY and run.running is not None:
            code = run.running.poll()
            if code is not None:
                self._fail(
                    run,
                    self._error(
                        ServiceExitedError,
                        run,
                        f"exited with code {code} during the test session",
                        fix="its log below says why; the tests "
                        "that need it from now on error, the others run on",
                    ),
                )
        if run.state is State.FAILED and run.error is not None:
            raise run.error

    def handle(self, name: str) -> Handle:
        run = self.runs[name]
        host, port, url = endpoint(run.spec)
        return Handle(
            name=name,
            tier=run.tier,
            host=host,
            port=port,
            url=url,
            ready_seconds=run.ready_seconds or 0.0,
            log_path=run.running.log_path if run.running else None,
            details=dict(run.details),
        )

    def _set(self, run: ServiceRun, state: State, **fields: Any) -> None:
        with self._cv:
            run.state = state
            for key, value in fields.items():
                setattr(run, key, value)
            self._cv.notify_all()

    def _bring_up(self, run: ServiceRun) -> None:
        try:
            self._await_dependencies(run)
            self._tier_delay(run)
            with self._cv:
                if self._closing:
                    raise _Cancelled
                run.state = State.STARTING
                run.starting_at = self.now()
            self.listener.service_starting(run)
            running = self.backend.launch(run.spec)
            self._set(run, State.RUNNING, running=running, launched_at=self.now())
            resolve = getattr(self.backend, "resolve", None)
            if resolve is not None:  # e.g. ports the engine chose
                run.spec = resolve(run.spec, running)
            if self.timing.service_startup_delay:
                self._sleep(self.timing.service_startup_delay)
            self._gate(run, running)
        except _Cancelled:
            self._set(run, State.CANCELLED)
        except ServiceError as exc:
            self._fail(run, exc)
        except PyAirtableError as exc:
            reason = str(exc).removeprefix(f"service '{run.name}': ")
            self._fail(run, ServiceError(run.name, f"could not be launched: {reason}"))
        except Exception as exc:  # a bug of ours: report it on the service, never hang
            self._fail(run, ServiceError(run.name, f"hit an internal error: {exc!r}"))

    def _await_dependencies(self, run: ServiceRun) -> None:
        for dep in run.spec.depends_on:
            dep_run = self.runs.get(dep.name)
            if dep_run is None:
                continue  # optional and not in this stack
            settled = _settled_for(dep.condition)
            with self._cv:
                self._cv.wait_for(lambda d=dep_run, s=settled: self._closing or d.state in s)  # type: ignore[misc]
                if self._closing:
                    raise _Cancelled
                state = dep_run.state
            if state not in _satisfies(dep.condition) and dep.required:
                reason = {
                    State.FAILED: "failed",
                    State.CANCELLED: "was cancelled",
                    State.READY: "is running but has not exited (it needs to, for "
                    "service_completed_successfully)",
                    State.COMPLETED: "exited with code 0 instead of becoming healthy; for a "
                    "one-shot job use condition: service_completed_successfully",
                }.get(state, f"is {state.value}")
                raise DependencyFailedError(run.name, dep.name, reason)

    def _tier_delay(self, run: ServiceRun) -> None:
        wait = self.timing.tier_wait_time
        if wait:  # the seed's fixed gap between tiers; 0 unless asked for
            self._sleep(max(0.0, (run.tier - 1) * wait - self.now()))

    def _sleep(self, seconds: float) -> None:
        with self._cv:
            if self._cv.wait_for(lambda: self._closing, timeout=seconds):
                raise _Cancelled

    def _budget(self, spec: ServiceSpec) -> tuple[float, float, bool]:
        """(how long to keep probing, the longest pause between attempts, whether the
        start-up deadline rather than the service's own bound set the first)."""
        check = spec.healthcheck
        if self.timing.health_check_timeout is not None:
            budget = self.timing.health_check_timeout
        elif check is not None and check.test is not None:
            budget = check.start_period + check.retries * check.interval
        else:
            budget = self.timing.default_timeout
        cap = min(self.timing.poll_cap, check.interval) if check else self.timing.poll_cap
        assert self._deadline is not None
        left = max(0.0, self._deadline - time.monotonic())
        return min(budget, left), cap, left < budget

    def _gate(self, run: ServiceRun, running: Running) -> None:
        spec = run.spec
        check = spec.healthcheck
        ctx = ProbeContext(running.log_path, min(check.timeout, 5.0) if check else 2.0)
        own = getattr(self.backend, "probe", None)  # e.g. the engine's health status
        probe = (own(spec, running, ctx) if own else None) or self.probe_factory(spec, ctx)
        budget, cap, by_deadline = self._budget(spec)
        if getattr(probe, "engine_decides", False):
            budget += ENGINE_GRACE

        def alive() -> str | None:
            if self._closing:
                raise _Cancelled
            code = running.poll()
            return None if code is None else f"exited with code {code}"

        def on_attempt(n: int, error: str | None) -> None:
            run.attempts = n
            if error:
                run.last_probe_error = self.redact(error)
            self.listener.probe_attempt(run, n, error)

        try:
            outcome = wait_ready(probe, budget=budget, cap=cap, alive=alive, on_attempt=on_attempt)
        except Gone as gone:
            if not gone.exited:
                raise self._error(ServiceError, run, gone.reason) from None
            if running.poll() == 0 and (
                self._awaited_exit(run.name) or spec.probe.kind == "started"
            ):
                self._set(run, State.COMPLETED, ready_at=self.now())
                self.listener.service_ready(run)
                return
            raise self._error(ServiceExitedError, run, f"{gone.reason} while starting") from None
        except TimeoutError:
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
            raise self._error(ServiceTimeoutError, run, cause, fix=fix) from None
        finally:
            close = getattr(probe, "close", None)
            if close:
                close()
        if self._awaited_exit(run.name):  # a one-shot job: settled by its exit, not its probe
            run.details = outcome.details
            self._await_exit(run, running)
            return
        # The start-up's failed attempts say nothing about a later death.
        self._set(
            run, State.READY, ready_at=self.now(), details=outcome.details, last_probe_error=""
        )
        self.listener.service_ready(run)

    def _awaited_exit(self, name: str) -> bool:
        """Whether some dependent waits for this service to finish, as a one-shot job."""
        return any(
            d.name == name and d.condition == "service_completed_successfully"
            for s in self.stack.services.values()
            for d in s.depends_on
        )

    def _await_exit(self, run: ServiceRun, running: Running) -> None:
        while (code := running.wait(0.05)) is None:
            if self._closing:
                raise _Cancelled
        if code != 0:
            raise self._error(
                ServiceExitedError,
                run,
                f"exited with code {code}",
                fix="dependents await it with service_completed_successfully: it must exit 0",
            )
        self._set(run, State.COMPLETED, ready_at=self.now())
        self.listener.service_ready(run)

    def _error(
        self, kind: type[ServiceError], run: ServiceRun, cause: str, fix: str = ""
    ) -> ServiceError:
        log_path = run.running.log_path if run.running else None
        sync = getattr(run.running, "sync_logs", None)  # logs that reach the file late
        if sync is not None:
            sync()
        return kind(
            run.name,
            cause,
            probe=self.redact(run.spec.probe.describe()),
            last_error=run.last_probe_error,
            log_tail=[self.redact(line) for line in tail(log_path)],
            log_path=str(log_path) if log_path else "",
            fix=fix,
        )

    def _fail(self, run: ServiceRun, error: ServiceError) -> None:
        self._set(run, State.FAILED, error=error)
        self.listener.service_failed(run)

    # -- stop --------------------------------------------------------------------

    def stop(self, *, emergency: bool = False) -> None:
        """Stop everything started, dependents before their dependencies; idempotent."""
        with self._cv:
            if self._stopped:
                return
            self._stopped = True
            self._closing = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join()
        if not self.backend.owns_services:
            self.backend.close()
            return
        started = {n: r for n, r in self.runs.items() if r.running is not None}
        users = graph.dependents({n: [d for d in self.edges[n] if d in started] for n in started})
        threads = [
            threading.Thread(target=self._stop_one, args=(run, users[name], emergency), daemon=True)
            for name, run in started.items()
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for run in started.values():  # belt and braces: nothing outlives the run
                if run.running is not None and run.running.poll() is None:
                    run.running.kill()
            failed = any(r.state is State.FAILED for r in self.runs.values())
            self.backend.close(failed=failed)

    def detach(self) -> None:
        """Leave everything running (a kept stack); later ``stop`` calls do nothing."""
        with self._cv:
            self._stopped = True
            self._closing = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join()
        self.backend.close(keep=True)

    def _stop_one(self, run: ServiceRun, users: set[str], emergency: bool) -> None:
        with self._cv:
            self._cv.wait_for(lambda: all(self.runs[u].stopped_at is not None for u in users))
        assert run.running is not None
        run.stop_began = self.now()
        try:
            if emergency:
                run.running.kill()
            else:
                if run.state is State.READY:
                    outcome = safety.before_stop(run.spec)
                    if outcome:
                        run.details["before_stop"] = self.redact(outcome)
                self.listener.before_stop(run)
                run.running.stop(run.spec.stop_grace_period)
        finally:
            with self._cv:
                run.stopped_at = self.now()
                if run.state in (State.READY, State.RUNNING, State.STARTING):
                    run.state = State.STOPPED
                self._cv.notify_all()
        self.listener.service_stopped(run)


def _settled_for(condition: str) -> set[State]:
    if condition == "service_started":
        return _STARTED | _SETTLED
    if condition == "service_healthy":
        return _SETTLED
    return {State.COMPLETED, State.FAILED, State.CANCELLED, State.STOPPED}


def _satisfies(condition: str) -> set[State]:
    return {
        "service_started": _STARTED,
        "service_healthy": {State.READY},
        "service_completed_successfully": {State.COMPLETED},
    }[condition]


def tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> list[str]:
    if path is None or not path.exists():
        return []
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 64 * 1024))
        return f.read().decode(errors="replace").splitlines()[-lines:]
