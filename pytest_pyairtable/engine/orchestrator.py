"""Start a stack as its DAG allows, gate on readiness, stop in reverse, record a timeline.

Each service gets a thread that waits for its own dependencies' conditions, launches
it, and waits at the readiness gate (readiness.py); nothing waits on a tier barrier.
All state changes happen under one condition variable, so a waiter wakes the moment
what it waits for happens. Stopping goes through the one stop order (stopping.py).

(Just over 350 lines: start, stop and their shared condition variable are one state
machine; split, each half would reach into the other's locking.)
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..backends.base import Backend, Running
from ..model import graph
from ..model.spec import ServiceSpec, StackSpec
from ..probes.checks import Probe, ProbeContext, make_probe
from ..support.errors import (
    ConfigError,
    DependencyFailedError,
    PyAirtableError,
    ServiceError,
    ServiceExitedError,
)
from ..support.redact import Redactor
from . import stopping
from .events import Listener
from .handle import Handle, endpoint
from .readiness import Cancelled, Gate, Timing, tail
from .run import SETTLED, UP, ServiceRun, State, satisfies, settled_for, unmet
from .snapshots import NoSnapshots, Restored

# Handle, Listener, Timing, endpoint and tail are this module's names too, as before
# the split: tests and plugins import them from here.
__all__ = [
    "Handle",
    "Listener",
    "Orchestrator",
    "ServiceRun",
    "State",
    "Timing",
    "endpoint",
    "tail",
]


class Orchestrator:
    def __init__(
        self,
        stack: StackSpec,
        backend: Backend,
        *,
        timing: Timing | None = None,
        listener: Listener | None = None,
        probe_factory: Callable[[ServiceSpec, ProbeContext], Probe] | None = None,
        redact: Redactor | None = None,
        snapshots: NoSnapshots | None = None,
    ) -> None:
        self.stack = stack
        self.snapshots = snapshots or NoSnapshots()  # jobs restored from snapshots
        self.backend = backend
        self.timing = timing or Timing()
        self.listener = listener or Listener()
        self.redact = redact or stack.redactor()
        self.edges = {n: [d.name for d in s.depends_on] for n, s in stack.services.items()}
        self.tiers = graph.tiers(self.edges)
        self.runs: dict[str, ServiceRun] = {}
        self.t0 = time.monotonic()
        self.t0_wall = time.time()
        self.stop_errors: list[str] = []
        self._deadline: float | None = None
        self._cv = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._stopped = False
        self._hurried = False  # interrupted during its stop: the rest is killed
        self.stopping = False  # its stop is under way
        self.gate = Gate(
            stack=stack,
            backend=backend,
            timing=self.timing,
            probe_factory=probe_factory or (lambda svc, ctx: make_probe(svc.probe, ctx)),
            redact=self.redact,
            closing=lambda: self._closing,
            awaited=self.awaited,
        )
        self._waited: set[str] = set()  # asked for by wait() or settle()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def now(self) -> float:
        return time.monotonic() - self.t0

    def up(self) -> bool:
        """Whether every started service is up (ready, or a job that completed)."""
        return bool(self.runs) and all(r.state in UP for r in self.runs.values())

    # -- start -------------------------------------------------------------------

    def start(self, names: Iterable[str] | None = None) -> list[str]:
        """Start ``names`` and what they need (all services if None); do not wait."""
        roots = self.stack.require(names) if names is not None else list(self.stack.services)
        wanted = graph.closure(self.edges, roots)
        with self._cv:  # under xdist, workers' requests call this from several threads
            if self._closing:
                return []
            # Which are new, decided where they are claimed: two callers that both
            # found a service missing would each launch it (a second process or job).
            new = [n for n in graph.start_order(self.edges) if n in wanted and n not in self.runs]
            if self._deadline is None:
                self._deadline = time.monotonic() + self.timing.max_startup_time
            for name in new:
                self.runs[name] = ServiceRun(
                    self.stack.services[name],
                    self.tiers[name],
                    scheduled_at=self.now(),
                    t0_wall=self.t0_wall,
                )
        if new:  # e.g. create containers ahead, off the critical path
            self.backend.prepare([self.stack.services[n] for n in new])
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
        """Block until ``name`` is up (starting it if needed); raise its error otherwise."""
        self.start([name])
        run = self.runs[name]
        with self._cv:
            self._waited.add(name)
            self._cv.wait_for(lambda: run.state in SETTLED)
        if run.state in UP:
            return self.handle(name)
        if run.error is not None:
            raise run.error.fresh()
        raise ServiceError(name, "was cancelled because the stack is stopping")

    def settle(self, name: str, timeout: float) -> bool:
        """Wait up to ``timeout`` for ``name`` to be ready or failed; True once it is."""
        run = self.runs[name]
        with self._cv:
            self._waited.add(name)
            return self._cv.wait_for(lambda: run.state in SETTLED, timeout=timeout)

    def expect(self, names: Iterable[str]) -> None:
        """``names`` will each be waited for (a caller that settles them one at a time):
        awaited from now on, not only once their turn comes."""
        with self._cv:
            self._waited.update(names)

    def awaited(self, name: str) -> bool:
        """Whether anything waits for ``name`` yet: a caller of wait() or settle() (a
        test's fixture), or a service of this run not started because it depends on
        it. One that nothing waits for (a leaf beside a chain) can be judged ready a
        little later at no cost to anyone, and spare the cores the others start on."""
        with self._cv:
            if name in self._waited:
                return True
            return any(
                run.state is State.PENDING and name in self.edges[other]
                for other, run in self.runs.items()
            )

    def check_alive(self, name: str) -> None:
        """Raise (a fresh copy of one recorded error) if a ready service has exited."""
        run = self.runs[name]
        if run.state is State.READY and run.running is not None:
            code = run.running.poll()
            if code is not None:
                self._fail(
                    run,
                    self.gate.error(
                        ServiceExitedError,
                        run,
                        f"exited with code {code} during the test session",
                        fix="its log below says why; the tests "
                        "that need it from now on error, the others run on",
                    ),
                )
        if run.state is State.FAILED and run.error is not None:
            raise run.error.fresh()

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
            self._await_image(run)  # begun by prepare; before the dependencies: fail fast
            self._await_dependencies(run)
            self._tier_delay(run)
            with self._cv:
                if self._closing:
                    raise Cancelled
                run.state = State.STARTING
                run.starting_at = self.now()
            self.listener.service_starting(run)
            if run.spec.healthcheck is not None and run.spec.healthcheck.refused:
                raise ConfigError(run.spec.healthcheck.refused)  # as the engine would
            if run.name in self.gate.jobs and self._restored(run):
                return
            with self._cv:
                wanted = set(self.runs)
            self.snapshots.seed(run.spec, wanted)  # a server may start from a job's snapshot
            running = self.backend.launch(run.spec)
            self._set(run, State.RUNNING, running=running, launched_at=self.now())
            run.spec = self.backend.resolve(run.spec, running)  # e.g. ports the engine chose
            if self.timing.service_startup_delay:
                self._sleep(self.timing.service_startup_delay)
            self._pass_gate(run, running)
        except Cancelled:
            self._set(run, State.CANCELLED)
        except ServiceError as exc:
            self._fail(run, exc)
        except PyAirtableError as exc:
            reason = str(exc).removeprefix(f"service '{run.name}': ")
            self._fail(run, ServiceError(run.name, f"could not be launched: {reason}"))
        except Exception as exc:  # a bug of ours: report it on the service, never hang
            self._fail(run, ServiceError(run.name, f"hit an internal error: {exc!r}"))

    def _restored(self, run: ServiceRun) -> bool:
        """A job whose databases were started from its snapshot: completed, not run."""
        note = self.snapshots.restored(run.name)
        if note is None:
            return False
        now = self.now()
        self._set(
            run, State.COMPLETED, running=Restored(), launched_at=now, ready_at=now,
            details={"restored": note},
        )  # fmt: skip
        self.listener.service_ready(run)
        return True

    def _pass_gate(
        self, run: ServiceRun, running: Running, *, boot: bool = True, deadline: float | None = None
    ) -> None:
        def on_attempt(n: int, error: str | None) -> None:
            run.attempts = n
            if error:
                run.last_probe_error = self.redact(error)
            self.listener.probe_attempt(run, n, error)

        deadline = self._deadline if deadline is None else deadline
        assert deadline is not None
        verdict = self.gate.wait(run, running, deadline, on_attempt)
        details = dict(verdict.details)
        if boot and verdict.completed and run.name in self.gate.jobs:
            with self._cv:
                launched = {n: r.running for n, r in self.runs.items() if r.running is not None}
            saved = self.snapshots.save(run.name, launched)  # before its dependents start
            if saved:
                details["snapshot"] = saved
        # The start-up's failed attempts say nothing about a later death. Only the
        # boot sets the times: a later start is one of the run's restarts.
        times = {"ready_at": self.now()} if boot else {}
        self._set(
            run,
            State.COMPLETED if verdict.completed else State.READY,
            details=details,
            last_probe_error="",
            **times,
        )
        self.listener.service_ready(run)

    def _await_image(self, run: ServiceRun) -> None:
        """Until its image is there (pulled or built, beside the others and the boot)."""
        fetch = self.backend.fetch(run.spec)
        if fetch is None:
            return
        with self._cv:
            run.fetch, run.fetch_began = fetch, max(0.0, fetch.began - self.t0)
        if not fetch.done:
            self.listener.image_waiting(run)
        while not fetch.wait(0.1):
            if self._closing:
                raise Cancelled
        with self._cv:
            run.fetch_ended = max(0.0, (fetch.ended or time.monotonic()) - self.t0)
        self.listener.image_ready(run)
        if fetch.error is not None:
            path = fetch.log_path
            raise ServiceError(
                run.name,
                fetch.error,
                fix=fetch.fix,
                log_path=str(path) if path else "",
                log_tail=[self.redact(line) for line in tail(path)] if path else [],
            )

    def _await_dependencies(self, run: ServiceRun) -> None:
        for dep in run.spec.depends_on:
            dep_run = self.runs.get(dep.name)
            if dep_run is None:
                continue  # optional and not in this stack
            settled = settled_for(dep.condition)
            with self._cv:
                self._cv.wait_for(lambda d=dep_run, s=settled: self._closing or d.state in s)  # type: ignore[misc]
                if self._closing:
                    raise Cancelled
                state = dep_run.state
            if state not in satisfies(dep.condition) and dep.required:
                raise DependencyFailedError(run.name, dep.name, unmet(state))

    def _tier_delay(self, run: ServiceRun) -> None:
        wait = self.timing.tier_wait_time
        if wait:  # the seed's fixed gap between tiers; 0 unless asked for
            self._sleep(max(0.0, (run.tier - 1) * wait - self.now()))

    def _sleep(self, seconds: float) -> None:
        with self._cv:
            if self._cv.wait_for(lambda: self._closing, timeout=seconds):
                raise Cancelled

    def _fail(self, run: ServiceRun, error: ServiceError) -> None:
        self._set(run, State.FAILED, error=error)
        self.listener.service_failed(run)

    # -- one service again (faults, and later a restart command) ----------------------

    def restart(self, name: str, *, kill: bool = False, grace: float | None = None) -> Handle:
        """Stop (or kill) ``name`` if it runs, start it again and wait until it is ready.
        ``grace``: seconds before SIGKILL, instead of its stop_grace_period."""
        run = self.runs[name]
        self.expect([name])  # its caller waits for it
        if run.running is not None and run.running.poll() is None:
            if kill:
                run.running.kill()
            else:
                run.running.stop(run.spec.stop_grace_period if grace is None else grace)
        began = self.now()
        run.restarts.append((began, None))
        self._set(run, State.STARTING, error=None)
        try:
            running = self.backend.launch(run.spec)
            self._set(run, State.RUNNING, running=running)
            self._deadline = time.monotonic() + self.timing.max_startup_time
            self._pass_gate(run, running, boot=False)
        except ServiceError as exc:
            self._fail(run, exc)
            raise
        run.restarts[-1] = (began, self.now())
        return self.handle(name)

    def regate(self, name: str, within: float | None = None) -> None:
        """Wait until a ready service passes its probe again (its dependency came back);
        ``within``: seconds at most (raising its ServiceError after them)."""
        run = self.runs[name]
        if run.state is State.READY and run.running is not None:
            bound = self.timing.max_startup_time if within is None else within
            self._pass_gate(run, run.running, boot=False, deadline=time.monotonic() + bound)

    # -- a kept stack's services ------------------------------------------------------

    def adopt(self, name: str, running: Running, *, completed: bool) -> ServiceRun:
        """Take over a service a kept stack left running (to stop it, with everything
        a run's own stop does)."""
        run = ServiceRun(
            self.stack.services[name],
            self.tiers[name],
            state=State.COMPLETED if completed else State.READY,
            running=running,
            t0_wall=self.t0_wall,
        )
        self.runs[name] = run
        return run

    # -- stop --------------------------------------------------------------------

    def stop(self, *, emergency: bool = False, keep_logs: bool | None = None) -> None:
        """Stop everything started, dependents before their dependencies; idempotent.
        Logs are kept when a service failed, unless ``keep_logs`` says otherwise."""
        if not self._close():
            return
        if not self.backend.owns_services:
            self.snapshots.close()
            self.backend.close()
            return
        started = {n: r for n, r in self.runs.items() if r.running is not None}
        self.stopping = True
        try:
            stopping.in_reverse_order(
                {n: self.edges[n] for n in started},
                lambda name: self._stop_one(started[name], emergency),
                lambda name: self.listener.after_service_stop(started[name]),
            )
        finally:
            self.snapshots.close()  # snapshots still being written: before the dirs go
            failed = any(r.state is State.FAILED for r in self.runs.values())
            self.backend.close(keep_logs=failed if keep_logs is None else keep_logs)
            self.stopping = False

    def detach(self, record: Any) -> None:
        """Leave everything running, as the kept stack recorded at ``record`` (a path);
        later ``stop`` calls do nothing."""
        self._close()
        self.snapshots.close()
        self.backend.close(keep_stack=record)

    def _close(self) -> bool:
        """End the start-up threads; False if the stack was already stopped or kept."""
        with self._cv:
            if self._stopped:
                return False
            self._stopped = True
            self._closing = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join()
        return True

    def hurry(self) -> list[str]:
        """A Ctrl-C (or SIGTERM) during a stop: kill what is still stopping, and stop
        what is left by killing it too. The services it killed."""
        self._hurried = True
        killed = []
        for run in list(self.runs.values()):
            if run.running is not None and run.stop_began is not None and run.stopped_at is None:
                run.running.kill()
                killed.append(run.name)
        return killed

    def _stop_one(self, run: ServiceRun, emergency: bool) -> None:
        assert run.running is not None
        run.stop_began = self.now()
        try:
            if emergency or self._hurried:
                run.running.kill()
            else:
                self.listener.before_stop(run)  # data safety first (a built-in hook)
                run.running.end(run.spec.stop_grace_period)
        except Exception as exc:  # one stuck service must not keep the others running
            self.stop_errors.append(str(exc) if isinstance(exc, PyAirtableError) else repr(exc))
        finally:
            with self._cv:
                run.stopped_at = self.now()
                if run.state in (State.READY, State.RUNNING, State.STARTING):
                    run.state = State.STOPPED
                self._cv.notify_all()
            with contextlib.suppress(Exception):  # a listener's error stops nothing
                self.listener.service_stopped(run)
