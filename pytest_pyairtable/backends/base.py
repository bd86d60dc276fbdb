"""How a service runs: the protocols listing every capability the core calls, base
classes giving each a default, and the registry of backends.

The core never asks whether a backend "has" something: a backend subclasses
``BaseBackend`` (its services ``BaseRunning``) and overrides what it does differently.
State that outlives a run belongs to the backend that made it: ``kept_state`` says
what a later process needs to find a kept stack again, ``reattach`` and ``adopt`` use
it, and a backend that cannot keep a stack refuses with a ``KeepError``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..model.spec import ServiceSpec
from ..probes.checks import Probe, ProbeContext
from ..support.errors import KeepError


@runtime_checkable
class Running(Protocol):
    """A launched (or adopted) service, as the core sees it."""

    log_path: Path | None

    def poll(self) -> int | None:
        """The exit code once it has ended, else None."""

    def wait(self, timeout: float | None = None) -> int | None:
        """Until it ends or ``timeout`` passes; the exit code, or None."""

    def stop(self, grace: float) -> int | None:
        """Stop gracefully, force after ``grace`` seconds; return once all of it is gone."""

    def kill(self) -> None:
        """End it at once (SIGKILL, docker kill), all of it."""

    def pause(self) -> None:
        """Freeze it (SIGSTOP, docker pause) without ending it."""

    def resume(self) -> None: ...

    def sync_logs(self) -> None:
        """Before its log tail is read: wait for output that reaches the file late."""

    def kept_state(self) -> dict[str, Any]:
        """JSON-able facts a later process needs to find and stop it (see ``adopt``)."""


@runtime_checkable
class Backend(Protocol):
    notices: list[str]  # what the run summary should say (compose found, stale removed)

    @property
    def name(self) -> str: ...

    @property
    def owns_services(self) -> bool:
        """False: attached to services someone else runs; never stop them."""

    def launch(self, svc: ServiceSpec) -> Running: ...

    def prepare(self, services: Sequence[ServiceSpec]) -> None:
        """Get ready to launch these soon (create containers), off the critical path."""

    def resolve(self, svc: ServiceSpec, running: Running) -> ServiceSpec:
        """The spec as launched: e.g. the ports an engine chose."""

    def probe(self, svc: ServiceSpec, running: Running, ctx: ProbeContext) -> Probe | None:
        """A readiness probe only this backend can run (an engine's health), or None."""

    def command_env(self, svc: ServiceSpec) -> Mapping[str, str]:
        """The environment of a command run on the host for ``svc`` (a healthcheck or
        probe command): what the service declares, as its container would have it."""

    def tracking(self) -> str:
        """How it tracks what its services start (for the run summary), or ""."""

    def identity_problem(self, svc: ServiceSpec, running: Running) -> str | None:
        """Why what answers on ``svc``'s probe port is not ``running`` (another process
        holds the port), or None. Asked once, when the probe has passed (and when the
        service exited while starting); a reset or fault only ever acts on a service
        that passed it."""

    def close(self, *, keep_stack: Path | None = None, keep_logs: bool = False) -> None:
        """Release what the run holds. ``keep_stack``: the stack stays up, recorded at that
        path; mark its state so no other run's clean-up takes it. ``keep_logs``: the
        logs outlive the run (it failed), for a post-mortem."""

    def kept_state(self) -> dict[str, Any]:
        """JSON-able facts ``reattach`` needs; raises KeepError where it cannot keep."""

    def adopt(self, svc: ServiceSpec, state: Mapping[str, Any]) -> Running:
        """The running service a kept record describes (``Running.kept_state``)."""


class BaseRunning:
    log_path: Path | None = None

    def poll(self) -> int | None:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while (code := self.poll()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return code

    def stop(self, grace: float) -> int | None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def pause(self) -> None:
        raise NotImplementedError

    def resume(self) -> None:
        raise NotImplementedError

    def sync_logs(self) -> None:
        """Nothing to wait for where a service writes its log file itself."""

    def kept_state(self) -> dict[str, Any]:
        raise KeepError(f"{type(self).__name__} cannot be kept running after the run.")


class BaseBackend:
    name: ClassVar[str] = ""
    owns_services: ClassVar[bool] = True

    def __init__(self, **options: Any) -> None:
        """``options``: run_id, logs_dir, compose_file, build, cleanup_volumes,
        inherit_env, port_holds, and what a front end passes for one backend only (each
        takes what it knows)."""
        self.notices: list[str] = []
        self.inherit_env = bool(options.get("inherit_env", False))

    def launch(self, svc: ServiceSpec) -> Running:
        raise NotImplementedError

    def prepare(self, services: Sequence[ServiceSpec]) -> None:
        """Nothing to prepare by default: ``launch`` does it all."""

    def resolve(self, svc: ServiceSpec, running: Running) -> ServiceSpec:
        return svc

    def probe(self, svc: ServiceSpec, running: Running, ctx: ProbeContext) -> Probe | None:
        return None

    def command_env(self, svc: ServiceSpec) -> Mapping[str, str]:
        from .environment import service_environment

        return service_environment(svc, os.environ, inherit=self.inherit_env)

    def tracking(self) -> str:
        return ""

    def identity_problem(self, svc: ServiceSpec, running: Running) -> str | None:
        return None  # e.g. an engine's port mapping: what answers is the container's

    def close(self, *, keep_stack: Path | None = None, keep_logs: bool = False) -> None:
        """Nothing held by default."""

    def kept_state(self) -> dict[str, Any]:
        raise KeepError(
            f"the {self.name} backend cannot keep a stack running after the run. "
            "Fix: run without --pyairtable-keep (or `up` without --detach)."
        )

    @classmethod
    def reattach(cls, state: Mapping[str, Any], run_id: str, **options: Any) -> BaseBackend:
        """A backend over a kept stack, from ``kept_state``: it adopts, stops and
        releases what the stack holds, and starts nothing new of its own accord."""
        raise KeepError(f"the {cls.name} backend keeps no stacks to reattach to.")

    def adopt(self, svc: ServiceSpec, state: Mapping[str, Any]) -> Running:
        raise KeepError(f"the {self.name} backend keeps no stacks to adopt services from.")


BackendFactory = Callable[..., BaseBackend]


def backend_class(name: str) -> type[BaseBackend]:
    import importlib

    from . import BACKENDS, check_backend

    check_backend(name)
    module, _, attr = BACKENDS[name].partition(":")
    cls: type[BaseBackend] = getattr(importlib.import_module(module), attr)
    return cls
