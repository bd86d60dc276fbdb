"""One stack placed over two backends (--pyairtable-local): the services named run on
this host from their ``x-pyairtable.local`` block (the code under test, from the working
tree), the others on the stack's own backend (containers of other teams' images).

One orchestrator, one fixture graph, one teardown: this backend is the one the
orchestrator sees, and each call goes to the backend the service is placed on, which its
spec names (``ServiceSpec.backend``: a kept stack's record keeps it, so ``down`` and
``restart`` find each service's own backend again). Addressing both ways is
addressing.py's: containers get host entries for the host-run services they need, and a
host-run service's environment is rewritten, at its launch, to where the host reaches
the containers it names (their ports as the engine published them by then).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..model.spec import ServiceSpec, StackSpec
from ..probes.checks import Probe, ProbeContext
from ..support.errors import ConfigError
from .addressing import Reach, names_of, reach_of, rewrite_environment, with_added_hosts
from .base import BackendOptions, BaseBackend, Placement, Running, ServerData, backend_class
from .fetch import Fetch
from .local import LocalBackend, local_block_problem

HOST = LocalBackend.name


class PlacedBackend(BaseBackend):
    name = "placed"
    owns_services = True  # both parts start their services (adapt refuses any other)

    def __init__(self, options: BackendOptions | None, made: dict[str, BaseBackend]) -> None:
        super().__init__(inherit_env=options.inherit_env if options else False)
        self._options = options  # None: a kept stack's, whose parts are all made
        self._made = made  # backend name -> the backend, made when first needed
        self._lock = threading.Lock()
        self._specs: dict[str, ServiceSpec] = {}  # as prepared, then as resolved
        self._resolved: set[str] = set()
        self._rewrites: dict[str, ServiceSpec] = {}  # host-run services, as launched

    @classmethod
    def create(cls, options: BackendOptions) -> PlacedBackend:
        return cls(options, {})

    def _backend(self, name: str) -> BaseBackend:
        with self._lock:
            if name not in self._made:
                if self._options is None:
                    raise ConfigError(f"the kept stack has no service on the {name} backend")
                self._made[name] = backend_class(name).create(self._options)
            return self._made[name]

    def _of(self, svc: ServiceSpec) -> BaseBackend:
        return self._backend(svc.backend or HOST)

    @property  # the parts' notices, as they add them
    def notices(self) -> list[str]:
        return [n for b in list(self._made.values()) for n in b.notices]

    @notices.setter
    def notices(self, value: list[str]) -> None:
        """BaseBackend's own list is not used: each part keeps its own."""

    @property  # how host-run services' addresses were rewritten, then the parts' notes
    def notes(self) -> list[str]:
        return self._notes + [n for b in list(self._made.values()) for n in b.notes]

    @notes.setter
    def notes(self, value: list[str]) -> None:
        self._notes = value

    # -- the stack, placed ---------------------------------------------------------------

    @classmethod
    def adapt(cls, stack: StackSpec, placement: Placement) -> StackSpec:
        """Each service marked with the backend it runs on; a named service that cannot
        run on the host, or an unknown name, is refused with the fix; each container
        given the host entries for the host-run services it reaches."""
        rest = backend_class(placement.rest)
        if not rest.owns_services:
            raise ConfigError(
                f"--pyairtable-local runs services on this host beside a stack this run "
                f"starts; the {rest.name} backend starts none. Fix: use "
                "--pyairtable-backend=compose (the default with --pyairtable-local)."
            )
        stack.require(placement.host)  # an unknown name: the valid ones are listed
        problems = [
            p for n in placement.host if (p := local_block_problem(stack.services[n])) is not None
        ]
        if problems:
            raise ConfigError("--pyairtable-local: " + "\n".join(problems))
        stack = rest.adapt(stack, placement)
        host_run = {n: s for n, s in stack.services.items() if n in placement.host}
        services = {
            name: dataclasses.replace(svc, backend=HOST)
            if name in host_run
            else with_added_hosts(dataclasses.replace(svc, backend=rest.name), host_run)
            for name, svc in stack.services.items()
        }
        return dataclasses.replace(stack, services=services)

    @classmethod
    def preflight(cls, services: Sequence[ServiceSpec]) -> list[str]:
        groups: dict[str, list[ServiceSpec]] = {}
        for svc in services:
            groups.setdefault(svc.backend or HOST, []).append(svc)
        return [p for name, group in groups.items() for p in backend_class(name).preflight(group)]

    # -- running -------------------------------------------------------------------------

    def prepare(self, services: Sequence[ServiceSpec]) -> None:
        groups: dict[str, list[ServiceSpec]] = {}
        with self._lock:
            for svc in services:
                self._specs.setdefault(svc.name, svc)
                groups.setdefault(svc.backend or HOST, []).append(svc)
        for name, group in groups.items():
            self._backend(name).prepare(group)

    def launch(self, svc: ServiceSpec) -> Running:
        return self._of(svc).launch(self._addressed(svc))

    def fetch(self, svc: ServiceSpec) -> Fetch | None:
        return self._of(svc).fetch(svc)

    def fetches(self) -> list[Fetch]:
        return [f for b in list(self._made.values()) for f in b.fetches()]

    def resolve(self, svc: ServiceSpec, running: Running) -> ServiceSpec:
        resolved = self._of(svc).resolve(svc, running)
        with self._lock:
            self._specs[svc.name] = resolved
            self._resolved.add(svc.name)
        return resolved

    def probe(self, svc: ServiceSpec, running: Running, ctx: ProbeContext) -> Probe | None:
        return self._of(svc).probe(self._addressed(svc), running, ctx)

    def command_env(self, svc: ServiceSpec) -> Mapping[str, str]:
        return self._of(svc).command_env(self._addressed(svc))

    def identity_problem(self, svc: ServiceSpec, running: Running) -> str | None:
        return self._of(svc).identity_problem(svc, running)

    def server_data(self, svc: ServiceSpec) -> ServerData | None:
        return self._of(svc).server_data(svc)

    def tracking(self) -> str:
        with self._lock:
            parts = list(self._made.values())
        return "; ".join(t for part in parts if (t := part.tracking()))

    def _addressed(self, svc: ServiceSpec) -> ServiceSpec:
        """A host-run service as it is launched: its environment pointing at where the
        host reaches the other services (rewritten once, at its launch)."""
        if svc.backend not in ("", HOST):
            return svc
        with self._lock:
            if svc.name in self._rewrites:
                return self._rewrites[svc.name]
            specs = dict(self._specs)
        reach: dict[str, tuple[str, Reach]] = {}
        for other in specs.values():
            if other.name == svc.name:
                continue
            where = reach_of(other, on_host=other.backend in ("", HOST))
            for alias in names_of(other):
                reach.setdefault(alias, (other.name, where))
        rewrite = rewrite_environment(svc, reach)
        addressed = dataclasses.replace(svc, environment=rewrite.environment)
        with self._lock:
            if svc.name not in self._rewrites:
                self._notes += [f"{svc.name} on the host: {line}" for line in rewrite.lines]
            return self._rewrites.setdefault(svc.name, addressed)

    def close(self, *, keep_stack: Path | None = None, keep_logs: bool = False) -> None:
        for backend in reversed(list(self._made.values())):  # the containers first
            backend.close(keep_stack=keep_stack, keep_logs=keep_logs)

    # -- a kept stack ----------------------------------------------------------------------

    def kept_state(self) -> dict[str, Any]:
        return {"backends": {name: b.kept_state() for name, b in self._made.items()}}

    @classmethod
    def reattach(
        cls, state: Mapping[str, Any], run_id: str, *, volumes: bool = False
    ) -> PlacedBackend:
        made = {
            name: backend_class(name).reattach(part, run_id, volumes=volumes)
            for name, part in dict(state["backends"]).items()
        }
        return cls(None, made)

    def adopt(self, svc: ServiceSpec, state: Mapping[str, Any]) -> Running:
        return self._of(svc).adopt(svc, state)
