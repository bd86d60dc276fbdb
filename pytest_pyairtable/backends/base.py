"""How a service runs: the ``Backend`` protocol and the backend registry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..model.spec import ServiceSpec


class Running(Protocol):
    """A launched service, as the orchestrator sees it."""

    log_path: Path | None

    def poll(self) -> int | None:
        """The exit code once it has ended, else None."""

    def wait(self, timeout: float | None = None) -> int | None: ...

    def stop(self, grace: float) -> int | None:
        """Stop gracefully, force after ``grace`` seconds; return the exit code."""

    def kill(self) -> None: ...

    def pause(self) -> None:
        """Freeze it (SIGSTOP, docker pause) without ending it."""

    def resume(self) -> None: ...


class Backend(Protocol):
    name: str
    owns_services: bool  # False: attached to services someone else runs; never stop them

    def launch(self, svc: ServiceSpec) -> Running: ...

    def close(self, *, failed: bool = False, keep: bool = False) -> None:
        """Release what the backend holds (temp dirs); keep logs when the run failed, and
        everything when the stack is kept running."""


BackendFactory = Callable[..., Backend]
BACKENDS: dict[str, str] = {
    "local": "pytest_pyairtable.backends.local:LocalBackend",
    "external": "pytest_pyairtable.backends.external:ExternalBackend",
    "compose": "pytest_pyairtable.backends.compose:ComposeBackend",
}


def backend_class(name: str) -> BackendFactory:
    import importlib

    from ..errors import ConfigError

    if name not in BACKENDS:
        raise ConfigError(
            f"unknown backend {name!r}. Valid: {', '.join(BACKENDS)}. "
            "Fix: --pyairtable-backend=local, compose or external."
        )
    module, _, attr = BACKENDS[name].partition(":")
    factory: BackendFactory = getattr(importlib.import_module(module), attr)
    return factory
