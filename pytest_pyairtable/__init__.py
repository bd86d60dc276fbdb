"""pytest-pyairtable: boot the PyAirtable microservice stack as a pytest fixture graph.

Names load on first use (PEP 562): the plugin is imported by every pytest run, and a
run that needs no service should not pay for the orchestrator, probes and their clients.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "ComposeFileError": "support.errors",
    "ConfigError": "support.errors",
    "DependencyCycleError": "support.errors",
    "DependencyFailedError": "support.errors",
    "InterpolationError": "support.errors",
    "PrerequisiteError": "support.errors",
    "PyAirtableError": "support.errors",
    "ServiceError": "support.errors",
    "ServiceExitedError": "support.errors",
    "ServiceTimeoutError": "support.errors",
    "UnknownServiceError": "support.errors",
    "Faults": "engine.faults",
    "Handle": "engine.handle",
    "Orchestrator": "engine.orchestrator",
    "Timing": "engine.readiness",
    "ServiceSpec": "model.spec",
    "StackSpec": "model.spec",
    "load_stack": "model.spec",
}

__all__ = [
    "ComposeFileError",
    "ConfigError",
    "DependencyCycleError",
    "DependencyFailedError",
    "Faults",
    "Handle",
    "InterpolationError",
    "Orchestrator",
    "PrerequisiteError",
    "PyAirtableError",
    "ServiceError",
    "ServiceExitedError",
    "ServiceSpec",
    "ServiceTimeoutError",
    "StackSpec",
    "Timing",
    "UnknownServiceError",
    "load_stack",
]

if TYPE_CHECKING:
    from .engine.faults import Faults
    from .engine.handle import Handle
    from .engine.orchestrator import Orchestrator
    from .engine.readiness import Timing
    from .model.spec import ServiceSpec, StackSpec, load_stack
    from .support.errors import (
        ComposeFileError,
        ConfigError,
        DependencyCycleError,
        DependencyFailedError,
        InterpolationError,
        PrerequisiteError,
        PyAirtableError,
        ServiceError,
        ServiceExitedError,
        ServiceTimeoutError,
        UnknownServiceError,
    )


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'pytest_pyairtable' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
