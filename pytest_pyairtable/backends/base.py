"""How a service runs: the protocols listing every capability the core calls, base
classes giving each a default, and the registry of backends.

The core never asks whether a backend "has" something, nor which one it is: a backend
subclasses ``BaseBackend`` (its services ``BaseRunning``), overrides what it does
differently, and answers for itself what callers would otherwise decide by its name:
whether it owns its services, what is missing before a start (``preflight``), how it
adapts a stack (``adapt``), which front-end fixtures configure it (``frontend_fixtures``),
how it is made from the run's options (``create``) and how it finds a kept stack again
(``reattach``). State that outlives a run belongs to the backend that made it:
``kept_state`` says what a later process needs, ``reattach`` and ``adopt`` use it, and a
backend that cannot keep a stack refuses with a ``KeepError``.

(Over 350 lines: each protocol member is listed once, with its contract, beside the
default that backends inherit; a split would part a contract from its default.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from ..model.spec import ServiceSpec, StackSpec
from ..support.errors import KeepError
from .fetch import Fetch

if TYPE_CHECKING:  # (the probes' clients: imported by what probes, not by `config`)
    from ..probes.checks import Probe, ProbeContext
    from .measure import ServiceCoverage


class HeldPorts(Protocol):
    """Free host ports chosen for the run (--pyairtable-free-ports), each held until its
    service launches: the backend releases them just before the service binds."""

    def environ(self) -> dict[str, str]:
        """Each port variable with its chosen port, as compose would read them."""

    def release(self, ports: Iterable[int]) -> None: ...

    def variable_of(self, port: int) -> str | None:
        """The variable a port was chosen for, to name it when the port is lost."""


@dataclass(frozen=True)
class DockerOverrides:
    """pytest-docker's fixtures a suite overrode: kept with the compose backend."""

    compose_command: str | None = None
    project_name: str | None = None
    cleanup: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Placement:
    """Where the command line puts services: ``urls``, NAME=URL of services that run
    elsewhere (--pyairtable-url); ``host``, services to run on this host from their
    ``x-pyairtable.local`` block (--pyairtable-local); ``rest``, the backend of the others
    when some are placed on the host."""

    urls: Mapping[str, str] = field(default_factory=dict)
    host: tuple[str, ...] = ()
    rest: str = ""


@dataclass(frozen=True)
class BackendOptions:
    """What a run knows that a backend may need; each backend's ``create`` takes its share."""

    run_id: str
    compose_file: Path
    compose_files: tuple[Path, ...] = ()
    env_file: Path | None = None
    profiles: tuple[str, ...] = ()
    logs_dir: Path | None = None
    build: str = "auto"
    cleanup_volumes: bool = False
    inherit_env: bool = False
    port_holds: HeldPorts | None = None
    docker: DockerOverrides = field(default_factory=DockerOverrides)
    placement: Placement = field(default_factory=Placement)
    coverage: ServiceCoverage | None = None  # the run measures coverage: its services too


@runtime_checkable
class Running(Protocol):
    """A launched (or adopted) service, as the core sees it."""

    log_path: Path | None
    log_start: int  # the size of its log when this run of it began: what it printed since
    logs_late: bool  # its lines reach log_path a little late: sync_logs before a read

    def poll(self) -> int | None:
        """The exit code once it has ended, else None."""

    def wait(self, timeout: float | None = None) -> int | None:
        """Until it ends or ``timeout`` passes; the exit code, or None."""

    def stop(self, grace: float) -> int | None:
        """Stop gracefully, force after ``grace`` seconds; return once all of it is gone."""

    def end(self, grace: float) -> None:
        """The stack is going away: stop it as ``stop`` does, but return the moment its
        processes are gone, though the backend's own record of it may say so a little
        later (nothing asks it again but for its log, which ``sync_logs`` waits for)."""

    def kill(self) -> None:
        """End it at once (SIGKILL, docker kill), all of it."""

    def pause(self) -> None:
        """Freeze it (SIGSTOP, docker pause) without ending it."""

    def resume(self) -> None: ...

    def sync_logs(self, moment: float | None = None) -> None:
        """Before its log tail is read: wait for output that reaches the file late; with
        ``moment`` (wall clock), for all it wrote before then (a failure's evidence)."""

    def kept_state(self) -> dict[str, Any]:
        """JSON-able facts a later process needs to find and stop it (see ``adopt``)."""

    def policy_restarts(self) -> list[tuple[float, int]]:
        """Each start again by its restart policy: (wall clock, the exit code that
        caused it)."""


class ServerData(Protocol):
    """A database server's data, as its backend saves it and starts the server from it:
    what a job's snapshot holds (state/jobsnap.py)."""

    identity: str  # what saved data depends on besides the service's definition: the
    # server's version and build, the backend's own settings for it

    def seed(self, source: Path) -> None:
        """Before the service launches: make it start from the data saved in ``source``."""

    def save(self, running: Running, dest: Path) -> None:
        """While it runs and no client writes: a consistent copy of its data into ``dest``
        (an empty directory)."""


@runtime_checkable
class Backend(Protocol):
    notices: list[str]  # what the run summary should say (compose found, stale removed)
    notes: list[str]  # details it shows with -v (how a service's addresses were rewritten)

    @property
    def name(self) -> str:
        """The registry's name: recorded with a kept stack, shown to the user."""

    @property
    def owns_services(self) -> bool:
        """False: attached to services someone else runs: never stop, break, reset them,
        nor choose ports for them."""

    @property
    def frontend_fixtures(self) -> Mapping[str, tuple[str, Any]]:
        """Fixtures of a front end that configure this backend: fixture name -> (field of
        ``DockerOverrides``, the fixture's own default, which changes nothing)."""

    @classmethod
    def create(cls, options: BackendOptions) -> Backend:
        """A backend for one run."""

    @classmethod
    def preflight(cls, services: Sequence[ServiceSpec]) -> list[str]:
        """What is missing to run these services (binaries, commands, free ports), each
        a line naming the service; checked before anything starts."""

    @property
    def where(self) -> str:
        """Where its services run, as the summary shows it: host, container, external."""

    @classmethod
    def adapt(cls, stack: StackSpec, placement: Placement) -> StackSpec:
        """The stack as this backend runs it, placed as the command line says."""

    @classmethod
    def reattach(cls, state: Mapping[str, Any], run_id: str, *, volumes: bool = False) -> Backend:
        """A backend over a kept stack, from ``kept_state``: it adopts, stops and releases
        what the stack holds, and starts nothing new of its own accord. ``volumes``: its
        stop removes what the stack wrote too (`pyairtable down --volumes`)."""

    def launch(self, svc: ServiceSpec) -> Running: ...

    def prepare(self, services: Sequence[ServiceSpec]) -> None:
        """Get ready to launch these soon (pull or build images, create containers), off
        the critical path."""

    def fetch(self, svc: ServiceSpec) -> Fetch | None:
        """What ``svc`` waits for before it can launch, begun by ``prepare`` (its image,
        pulled or built), or None when nothing: the orchestrator waits on it before the
        dependencies, so a pull that fails fails the service at once."""

    def fetches(self) -> Sequence[Fetch]:
        """Every fetch of the run so far, running or ended (a live display, the summary)."""

    def resolve(self, svc: ServiceSpec, running: Running) -> ServiceSpec:
        """The spec as launched: e.g. the ports an engine chose."""

    def probe(self, svc: ServiceSpec, running: Running, ctx: ProbeContext) -> Probe | None:
        """A readiness probe only this backend can run (an engine's health), or None."""

    def command_env(self, svc: ServiceSpec) -> Mapping[str, str]:
        """The environment of a command run on the host for ``svc`` (a healthcheck or
        probe command): what the service declares, as its container would have it."""

    def tracking(self) -> str:
        """How it tracks what its services start (for the run summary), or ""."""

    def server_data(self, svc: ServiceSpec) -> ServerData | None:
        """How this backend saves ``svc``'s data and starts it from saved data (a job's
        snapshot), or None where it cannot: then the jobs that write to it always run."""

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
    log_start: int = 0  # an adopted service's log is read from its start
    logs_late = False  # a process writes its own log file

    def poll(self) -> int | None:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while (code := self.poll()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return code

    def stop(self, grace: float) -> int | None:
        raise NotImplementedError

    def end(self, grace: float) -> None:
        self.stop(grace)

    def kill(self) -> None:
        raise NotImplementedError

    def pause(self) -> None:
        raise NotImplementedError

    def resume(self) -> None:
        raise NotImplementedError

    def sync_logs(self, moment: float | None = None) -> None:
        """Nothing to wait for where a service writes its log file itself."""

    def kept_state(self) -> dict[str, Any]:
        raise KeepError(f"{type(self).__name__} cannot be kept running after the run.")

    def policy_restarts(self) -> list[tuple[float, int]]:
        return []  # no policy, or one the engine applies and reports itself


class BaseBackend:
    name: ClassVar[str] = ""
    owns_services: ClassVar[bool] = True
    where: ClassVar[str] = ""
    frontend_fixtures: ClassVar[Mapping[str, tuple[str, Any]]] = {}

    def __init__(self, *, inherit_env: bool = False) -> None:
        self.notices: list[str] = []
        self.notes: list[str] = []
        self.inherit_env = inherit_env

    @classmethod
    def create(cls, options: BackendOptions) -> BaseBackend:
        raise NotImplementedError

    @classmethod
    def preflight(cls, services: Sequence[ServiceSpec]) -> list[str]:
        return []  # nothing to check before a start by default: ``launch`` says what fails

    @classmethod
    def adapt(cls, stack: StackSpec, placement: Placement) -> StackSpec:
        return stack

    def launch(self, svc: ServiceSpec) -> Running:
        raise NotImplementedError

    def prepare(self, services: Sequence[ServiceSpec]) -> None:
        """Nothing to prepare by default: ``launch`` does it all."""

    def fetch(self, svc: ServiceSpec) -> Fetch | None:
        return None  # nothing to fetch by default: a process runs what is installed

    def fetches(self) -> Sequence[Fetch]:
        return ()

    def resolve(self, svc: ServiceSpec, running: Running) -> ServiceSpec:
        return svc

    def probe(self, svc: ServiceSpec, running: Running, ctx: ProbeContext) -> Probe | None:
        return None

    def command_env(self, svc: ServiceSpec) -> Mapping[str, str]:
        from .environment import service_environment

        return service_environment(svc, os.environ, inherit=self.inherit_env)

    def tracking(self) -> str:
        return ""

    def server_data(self, svc: ServiceSpec) -> ServerData | None:
        return None  # no job snapshots: its jobs run at every boot

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
    def reattach(
        cls, state: Mapping[str, Any], run_id: str, *, volumes: bool = False
    ) -> BaseBackend:
        raise KeepError(f"the {cls.name} backend keeps no stacks to reattach to.")

    def adopt(self, svc: ServiceSpec, state: Mapping[str, Any]) -> Running:
        raise KeepError(f"the {self.name} backend keeps no stacks to adopt services from.")


def backend_class(name: str) -> type[BaseBackend]:
    import importlib

    from . import BACKENDS, COMPOSED, check_backend

    if name not in COMPOSED:
        check_backend(name)
    module, _, attr = {**BACKENDS, **COMPOSED}[name].partition(":")
    cls: type[BaseBackend] = getattr(importlib.import_module(module), attr)
    return cls


def log_size(path: Path | None) -> int:
    """Where a log ends now: a service launched next writes after it."""
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def where_of(svc: ServiceSpec) -> str:
    """Where a service of a placed stack runs (host, container); "" where the whole stack
    runs on one backend."""
    return backend_class(svc.backend).where if svc.backend else ""
