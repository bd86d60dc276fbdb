"""Fault injection for users' resilience tests: break one service, then heal the stack."""

from __future__ import annotations

from ..errors import UnknownServiceError
from .orchestrator import Handle, Orchestrator, ServiceRun, State


class Faults:
    """What ``pyairtable_faults`` yields. Every fault is undone after the test: paused
    services resume, stopped or killed ones restart, and the whole stack is probed
    healthy again before the next test starts."""

    def __init__(self, orch: Orchestrator) -> None:
        self._orch = orch
        self.touched: list[str] = []

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

    def stop(self, name: str) -> None:
        """Graceful stop, as on shutdown (stop_signal, then SIGKILL after the grace period)."""
        run = self._run(name)
        assert run.running is not None
        run.running.stop(run.spec.stop_grace_period)

    def kill(self, name: str) -> None:
        """SIGKILL to its whole process group: a crash."""
        run = self._run(name)
        assert run.running is not None
        run.running.kill()

    def pause(self, name: str) -> None:
        """SIGSTOP: it keeps its ports but answers nothing, like a hung process."""
        run = self._run(name)
        assert run.running is not None
        run.running.pause()

    def resume(self, name: str) -> None:
        run = self._run(name)
        assert run.running is not None
        run.running.resume()

    def restart(self, name: str) -> Handle:
        """Stop it and start it again; returns once it is ready."""
        self._run(name)
        return self._orch.restart(name)

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
