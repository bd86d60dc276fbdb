"""Hooks a service repo can implement in its conftest.py or a plugin.

Always called with keyword arguments. Register with ``pytest_addhooks``. The stack is
run by threads, one per service, so most hooks are not called on the main thread:
each says which thread calls it. Under pytest-xdist every hook runs in the controller
(the process that owns the stack), never in a worker. `pyairtable down` calls
``before_stop`` too, with the built-in implementations only (it loads no conftest.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ..engine.orchestrator import Handle, ServiceRun
    from ..model.probespec import ProbeSpec
    from ..model.spec import ServiceSpec, StackSpec
    from ..probes.checks import Probe, ProbeContext

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_pyairtable_make_probe(
    spec: ProbeSpec, service: ServiceSpec, context: ProbeContext
) -> Probe | None:
    """Return a probe (an object with ``check() -> dict``, raising ProbeFailed) to replace
    the built-in one, or None to keep it. Called on the service's start-up thread."""


@hookspec
def pytest_pyairtable_stack_loaded(stack: StackSpec) -> None:
    """The compose file was read and validated; nothing has started. Called on the
    thread that first needs the stack (the main thread; under xdist, the controller's
    thread serving the first worker that asked)."""


@hookspec
def pytest_pyairtable_service_ready(service: Handle, details: dict[str, Any]) -> None:
    """A service passed its probe, or a job exited 0 (seed data here, warm a cache, ...).
    Called on the service's start-up thread; other services start meanwhile."""


@hookspec
def pytest_pyairtable_service_failed(run: ServiceRun, error: Exception) -> None:
    """A service failed to start; ``error`` carries its log tail and last probe error.
    Called on the service's start-up thread."""


@hookspec
def pytest_pyairtable_before_stop(run: ServiceRun) -> None:
    """Called before a service is stopped gracefully (not in emergency mode): back up data
    here. The built-in data-safety step (``pyairtable-data-safety``: PostgreSQL CHECKPOINT,
    Redis SAVE) runs first and leaves its outcome in ``run.details["before_stop"]``.
    Called on the service's stop thread: services stop concurrently, each after every
    service that depends on it."""
