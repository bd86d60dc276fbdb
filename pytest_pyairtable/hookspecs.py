"""Hooks a service repo can implement in its conftest.py or a plugin.

Always called with keyword arguments. Register with ``pytest_addhooks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .engine.orchestrator import Handle, ServiceRun
    from .model.probespec import ProbeSpec
    from .model.spec import ServiceSpec, StackSpec
    from .probes.checks import Probe, ProbeContext

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_pyairtable_make_probe(
    spec: ProbeSpec, service: ServiceSpec, context: ProbeContext
) -> Probe | None:
    """Return a probe for ``service`` to replace the built-in one, or None to keep it."""


@hookspec
def pytest_pyairtable_stack_loaded(stack: StackSpec) -> None:
    """The compose file was read and validated; nothing has started."""


@hookspec
def pytest_pyairtable_service_ready(service: Handle, details: dict[str, Any]) -> None:
    """A service passed its probe (seed data here, warm a cache, ...)."""


@hookspec
def pytest_pyairtable_service_failed(run: ServiceRun, error: Exception) -> None:
    """A service failed to start; ``error`` carries its log tail and last probe error."""


@hookspec
def pytest_pyairtable_before_stop(run: ServiceRun) -> None:
    """Called before a service is stopped gracefully (not in emergency mode): back up data here."""
