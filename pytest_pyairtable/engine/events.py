"""The observer of a run, kept apart so front ends can subclass it without importing
the orchestrator (and its clients) before a stack is needed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import ServiceRun


class Listener:
    """Observer of a run; the plugin and the CLI subclass it. Called from worker threads."""

    def image_waiting(self, run: ServiceRun) -> None: ...  # its image is pulled or built
    def image_ready(self, run: ServiceRun) -> None: ...  # that ended (run.fetch says how)
    def service_starting(self, run: ServiceRun) -> None: ...
    def service_ready(self, run: ServiceRun) -> None: ...
    def service_failed(self, run: ServiceRun) -> None: ...
    def probe_attempt(self, run: ServiceRun, attempt: int, error: str | None) -> None: ...
    def before_stop(self, run: ServiceRun) -> None: ...
    # As it stops, before its dependencies' stops begin: keep it cheap (a line), so what
    # is said follows the order of the stops.
    def service_stopped(self, run: ServiceRun) -> None: ...
    # Then, beside its dependencies' stops: the slower after-work (its log saved).
    def after_service_stop(self, run: ServiceRun) -> None: ...
