"""pytest-pyairtable: boot the PyAirtable microservice stack as a pytest fixture graph."""

from __future__ import annotations

from .errors import (
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
from .orchestrator import Handle, Orchestrator, Timing
from .spec import ServiceSpec, StackSpec, load_stack

__all__ = [
    "ComposeFileError",
    "ConfigError",
    "DependencyCycleError",
    "DependencyFailedError",
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
