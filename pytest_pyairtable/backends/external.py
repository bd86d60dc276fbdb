"""The external backend: the services already run somewhere (CI service containers, a
staging host). We only probe them, at the URLs we are given; we never start or stop
anything, and run no data-safety step on them."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..model.spec import ServiceSpec, StackSpec
from ..support.errors import ConfigError
from .base import BackendOptions, BaseBackend, BaseRunning, Placement

_SCHEMES = {"postgres": ("postgres", "postgresql"), "redis": ("redis", "rediss")}


class Attached(BaseRunning):
    """A service someone else runs: always running as far as we know, never touched."""

    def poll(self) -> int | None:
        return None

    def wait(self, timeout: float | None = None) -> int | None:
        time.sleep(timeout or 0)
        return None

    def stop(self, grace: float) -> int | None:
        return None

    def kill(self) -> None:
        """Not ours to kill."""

    def pause(self) -> None:
        """Not ours to pause."""

    def resume(self) -> None:
        """Not ours to resume."""

    def kept_state(self) -> dict[str, Any]:
        return {}  # nothing to find again: it was never ours


class ExternalBackend(BaseBackend):
    name = "external"
    owns_services = False
    where = "external"

    def __init__(self, *, inherit_env: bool = False) -> None:
        super().__init__(inherit_env=inherit_env)

    @classmethod
    def create(cls, options: BackendOptions) -> ExternalBackend:
        return cls(inherit_env=options.inherit_env)

    @classmethod
    def adapt(cls, stack: StackSpec, placement: Placement) -> StackSpec:
        return with_urls(stack, placement.urls)

    def launch(self, svc: ServiceSpec) -> Attached:
        return Attached()

    def kept_state(self) -> dict[str, Any]:
        return {}  # a kept external stack is only its URLs: nothing to stop

    @classmethod
    def reattach(
        cls, state: Mapping[str, Any], run_id: str, *, volumes: bool = False
    ) -> ExternalBackend:
        return cls()

    def adopt(self, svc: ServiceSpec, state: Mapping[str, Any]) -> Attached:
        return Attached()


def with_urls(stack: StackSpec, urls: Mapping[str, str]) -> StackSpec:
    """Point each service's probe and handle at its given URL (``x-pyairtable.url`` or
    ``--pyairtable-url NAME=URL``, the option winning)."""
    unknown = sorted(set(urls) - set(stack.services))
    if unknown:
        raise ConfigError(
            f"--pyairtable-url names unknown service(s) {', '.join(unknown)}; "
            f"services are: {', '.join(stack.services)}."
        )
    services = {}
    for name, svc in stack.services.items():
        url = urls.get(name) or svc.url
        if not url:
            services[name] = svc
            continue
        probe = svc.probe
        target = urlsplit(url)
        if probe.kind == "http":
            probe = dataclasses.replace(
                probe,
                target=urlunsplit(
                    urlsplit(probe.target)._replace(scheme=target.scheme, netloc=target.netloc)
                ),
            )
        elif target.scheme in _SCHEMES.get(probe.kind, ()):
            probe = dataclasses.replace(probe, target=url)
        elif probe.kind in {"tcp", "started"}:
            probe = dataclasses.replace(
                probe, kind="tcp", target=f"{target.hostname}:{target.port}"
            )
        services[name] = dataclasses.replace(svc, url=url, probe=probe)
    return dataclasses.replace(stack, services=services)
