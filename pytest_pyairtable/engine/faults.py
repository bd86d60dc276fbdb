"""Fault injection for users' resilience tests: break one service, then heal the stack.

``FaultInjector`` does it, in the process that owns the stack; ``Faults`` is what a
test gets (``pyairtable_faults``): the same calls, sent to the owner wherever it runs
(the same process, or the xdist controller through session/sharing.py).
"""

from __future__ import annotations

from collections.abc import Callable

from ..support.errors import PyAirtableError, UnknownServiceError
from .orchestrator import Handle, Orchestrator, ServiceRun, State

ACTIONS = ("stop", "kill", "pause", "resume", "restart")
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
    """Breaks services of one orchestrator's stack, remembering what it touched so
    ``heal`` can bring exactly that back."""

    def __init__(self, orch: Orchestrator) -> None:
        self._orch = orch
        self.touched: list[str] = []

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

    def heal(self) -> None:
        """Bring every touched service back (resume, or restart what is not up), then wait
        until every ready service passes its probe again: dependents may have noticed."""
        for name in self.touched:
            run = self._orch.runs[name]
            if run.running is not None:
                run.running.resume()
            if (
                run.running is None
                or run.running.poll() is not None
                or run.state is not State.READY
            ):
                self._orch.restart(name)
        for name in list(self._orch.runs):
            self._orch.regate(name)
        self.touched.clear()
