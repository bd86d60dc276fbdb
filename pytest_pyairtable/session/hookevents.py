"""Where the orchestrator's events meet the hooks: a listener that calls them (on the
orchestrator's threads, as each hookspec says) and queues progress lines, and the hook
relay of a process that has no pytest (the `pyairtable` command)."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

from ..engine.events import Listener
from ..support.errors import ServiceError
from . import hookspecs

if TYPE_CHECKING:
    from ..engine.orchestrator import Handle, ServiceRun


def own_hooks() -> Any:
    """The hooks of a process without pytest: the hookspecs and the built-in
    implementations (data safety), registered as pytest registers them; no conftest.py."""
    from ..state import safety

    manager = pluggy.PluginManager("pytest")
    manager.add_hookspecs(hookspecs)
    manager.register(safety, safety.PLUGIN_NAME)
    return manager.hook


class HookEvents(Listener):
    """Forwards orchestrator events to the hooks and queues progress lines, which a
    front end prints from its main thread: nothing may write to the terminal from
    another thread while pytest captures output."""

    def __init__(self, hook: Any, redact: Callable[[str], str], debug: bool = False) -> None:
        self.hook = hook
        self.redact = redact
        self.debug = debug
        self.handle: Callable[[str], Handle] | None = None  # set once there is a stack
        self.stopped: Callable[[ServiceRun], None] | None = None  # e.g. keep its log's end
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    def image_waiting(self, run: ServiceRun) -> None:
        if run.fetch is not None:
            verb = "pulling" if run.fetch.kind == "pull" else "building"
            waiting = f"waiting for its image: {verb} {run.fetch.label}"
            self.lines.put(f"pyairtable: {run.name:<22} {waiting}")

    def image_ready(self, run: ServiceRun) -> None:
        if run.fetch is not None and run.fetch.error is None:
            self.lines.put(f"pyairtable: {run.name:<22} {run.fetch.summary()}")

    def service_starting(self, run: ServiceRun) -> None:
        self.lines.put(f"pyairtable: {run.name:<22} starting (tier {run.tier})")

    def service_ready(self, run: ServiceRun) -> None:
        if run.restarts and run.restarts[-1][1] is None:  # a restart, not the boot
            self.lines.put(f"pyairtable: {run.name:<22} {run.state.value} again")
        elif run.details.get("restored"):  # a job not run: its snapshot stood for it
            self.lines.put(f"pyairtable: {run.name:<22} {run.details['restored']}")
        else:
            saved = run.details.get("snapshot")
            self.lines.put(
                f"pyairtable: {run.name:<22} {run.state.value} in {run.ready_seconds or 0:.2f}s"
                + (f"; {saved}" if saved else "")
            )
        if self.handle is not None:
            handle = self.handle(run.name)
            self.hook.pytest_pyairtable_service_ready(service=handle, details=dict(run.details))

    def service_failed(self, run: ServiceRun) -> None:
        headline = run.error.headline() if isinstance(run.error, ServiceError) else str(run.error)
        self.lines.put(f"pyairtable: {headline}")
        self.hook.pytest_pyairtable_service_failed(run=run, error=run.error)

    def probe_attempt(self, run: ServiceRun, attempt: int, error: str | None) -> None:
        if self.debug:
            outcome = "ok" if error is None else self.redact(error)
            self.lines.put(f"pyairtable: {run.name:<22} probe #{attempt}: {outcome}")

    def before_stop(self, run: ServiceRun) -> None:
        self.hook.pytest_pyairtable_before_stop(run=run)

    def service_stopped(self, run: ServiceRun) -> None:
        done = run.details.get("before_stop")
        note = f" ({self.redact(done)})" if done else ""
        self.lines.put(f"pyairtable: {run.name:<22} stopped{note}")

    def after_service_stop(self, run: ServiceRun) -> None:
        if self.stopped is not None:
            self.stopped(run)

    def drain(self) -> list[str]:
        lines = []
        while True:
            try:
                lines.append(self.lines.get_nowait())
            except queue.Empty:
                return lines
