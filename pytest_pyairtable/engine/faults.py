"""Fault injection for users' resilience tests: break one service, then heal the stack.

``FaultInjector`` does it, in the process that owns the stack; ``Faults`` is what a
test gets (``pyairtable_faults``): the same calls, sent to the owner wherever it runs
(the same process, or the xdist controller through session/sharing.py).
"""

from __future__ import annotations

from collections.abc import Callable

from ..model import graph
from ..support.errors import PyAirtableError, ServiceError, UnknownServiceError
from .orchestrator import Handle, Orchestrator, ServiceRun, State
from .readiness import tail

ACTIONS = ("stop", "kill", "pause", "resume", "restart")
# After a fault, how long a service that still runs may take to answer its probe again
# once what it needs is back, before the heal restarts it.
REGATE_SECONDS = 10.0
Send = Callable[[str, str], Handle | None]  # (action, service) -> handle after a restart


class Faults:
    """What ``pyairtable_faults`` yields. Every fault is undone after the test: paused
    services resume, stopped or killed ones restart, and the whole stack is probed
    healthy again before the next test starts."""

    def __init__(self, send: Send) -> None:
        self._send = send

    def stop(self, name: str) -> None:
        """Graceful stop, as on shutdown (stop_signal, then SIGKILL after the grace period)."""
        self._send("stop", name)

    def kill(self, name: str) -> None:
        """SIGKILL to its whole process group (docker kill): a crash."""
        self._send("kill", name)

    def pause(self, name: str) -> None:
        """SIGSTOP (docker pause): it keeps its ports but answers nothing, like a hung process."""
        self._send("pause", name)

    def resume(self, name: str) -> None:
        self._send("resume", name)

    def restart(self, name: str) -> Handle:
        """Stop it and start it again; returns once it is ready."""
        handle = self._send("restart", name)
        assert handle is not None
        return handle


class FaultInjector:
    """Breaks services of one orchestrator's stack, remembering what it touched and
    what was up before, so ``heal`` can bring the stack back as it was."""

    def __init__(self, orch: Orchestrator) -> None:
        self._orch = orch
        self.touched: list[str] = []
        self._up_before = {
            n for n, r in orch.runs.items() if r.state in (State.READY, State.COMPLETED)
        }

    def apply(self, action: str, name: str) -> Handle | None:
        if action not in ACTIONS:
            raise PyAirtableError(f"pyairtable: unknown fault {action!r}; valid: {ACTIONS}")
        run = self._run(name)
        if action == "restart":
            return self._orch.restart(name)
        running = run.running
        assert running is not None
        if action == "stop":
            running.stop(run.spec.stop_grace_period)
        elif action == "kill":
            running.kill()
        elif action == "pause":
            running.pause()
        else:
            running.resume()
        return None

    def _run(self, name: str) -> ServiceRun:
        run = self._orch.runs.get(name)
        if run is None or run.running is None:
            started = ", ".join(n for n, r in self._orch.runs.items() if r.running) or "none"
            raise UnknownServiceError(
                f"fault injection: service '{name}' is not running in this session "
                f"(running: {started}). Fix: request its fixture in the test too."
            )
        if name not in self.touched:
            self.touched.append(name)
        return run

    def heal(self) -> list[str]:
        """Bring the stack back as it was before the fault: what was touched resumes or
        restarts; then, in dependency order, every service that was up restarts where it
        must (it exited meanwhile, or depends with ``restart: true`` on one that
        restarted, as compose does) and is probed ready again otherwise, restarting it
        when it does not answer within ``REGATE_SECONDS`` of what it needs being back.
        Returns what it had to do; raises the ServiceError of a service it cannot bring
        back (that service then fails the tests that need it, naming this error)."""
        orch, done, restarted = self._orch, list[str](), set[str]()
        for name in self.touched:
            running = orch.runs[name].running
            if running is not None:
                running.resume()
        for name in graph.start_order(orch.edges):
            run = orch.runs.get(name)
            if run is None or name not in self._up_before or run.state is State.COMPLETED:
                continue
            why = self._why_restart(run, restarted)
            if why is None:
                try:
                    orch.regate(name, within=REGATE_SECONDS)
                    continue
                except ServiceError as exc:
                    if run.running is not None and run.running.poll() is not None:
                        why = self._exited(run, "after the fault")
                    else:
                        why = f"did not answer within {REGATE_SECONDS:g}s ({exc.headline()})"
            orch.restart(name)
            restarted.add(name)
            began, ended = run.restarts[-1]
            done.append(f"{name} {why}; restarted, ready in {(ended or began) - began:.2f}s")
        self.touched.clear()
        return done

    def _why_restart(self, run: ServiceRun, restarted: set[str]) -> str | None:
        running = run.running
        if run.name in self.touched and (
            running is None or running.poll() is not None or run.state is not State.READY
        ):
            return "was stopped by the fault"
        if running is None or running.poll() is not None:
            return self._exited(run, "during the fault")
        back = [d.name for d in run.spec.depends_on if d.restart and d.name in restarted]
        if back:
            return f"depends on {back[0]} with restart: true"
        return None

    def _exited(self, run: ServiceRun, when: str) -> str:
        running = run.running
        code = running.poll() if running is not None else None
        lines = tail(running.log_path if running else None, 3)
        shown = "; ".join(self._orch.redact(line) for line in lines)
        return f"exited {code} {when}" + (f" (log: {shown})" if shown else "")
