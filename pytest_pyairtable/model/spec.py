"""The stack as plain immutable data, read from Compose Specification files.

``load_stack`` is the only entry point: it reads the compose files as ``docker compose``
does (``loader``), turns each active service into a ``ServiceSpec`` (``service``) and
returns a ``StackSpec``. Nothing here starts anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..support.errors import UnknownServiceError
from ..support.redact import Redactor, dataclass_repr, mask_patterns, secret_values, worth_masking
from .names import fixture_name
from .probespec import ProbeSpec
from .schema import CONDITIONS

if TYPE_CHECKING:
    from .loader import Model

__all__ = ["CONDITIONS", "ServiceSpec", "StackSpec", "load_stack"]


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...] | None  # argv; None when compose would run no check
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    start_interval: float = 5.0
    refused: str | None = None  # why the engine would refuse it: the service fails to start

    def __repr__(self) -> str:
        return mask_patterns(dataclass_repr(self))

    @property
    def budget(self) -> float:
        """How long compose itself would wait before calling the service unhealthy."""
        return self.start_period + self.retries * (self.interval + self.timeout)


@dataclass(frozen=True)
class Dependency:
    name: str
    condition: str = "service_started"
    required: bool = True
    restart: bool = False


@dataclass(frozen=True)
class PortMapping:
    container: int
    host: int | None  # the first port of the published range; None: any free port
    host_ip: str = ""
    protocol: str = "tcp"
    published: str | None = None  # as compose prints it: "8080", "8000-8010"


@dataclass(frozen=True)
class VolumeMount:
    type: str  # bind, volume, tmpfs, ...
    source: str  # an absolute path for a bind mount
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class RestartPolicy:
    """``restart:`` / ``deploy.restart_policy`` as compose hands them to the engine:
    ``no``, ``always``, ``unless-stopped`` or ``on-failure`` with at most ``retries``
    restarts (0: no limit)."""

    mode: str = "no"
    retries: int = 0

    def restarts(self, exit_code: int, done: int) -> bool:
        """Whether the engine would start it again after it exited on its own."""
        if self.mode in ("always", "unless-stopped"):
            return True
        if self.mode == "on-failure":
            return exit_code != 0 and (self.retries == 0 or done < self.retries)
        return False

    @classmethod
    def of(cls, restart: object, deploy: object) -> RestartPolicy:
        """As compose does: ``deploy.restart_policy`` over ``restart``; its conditions
        ``none``/``any`` are the engine's ``no``/``always``."""
        policy = cls()
        if isinstance(restart, str) and restart:
            mode, _, count = restart.partition(":")
            policy = cls(_MODES.get(mode, mode), int(count) if count.isdigit() else 0)
        rp = deploy.get("restart_policy") if isinstance(deploy, Mapping) else None
        if isinstance(rp, Mapping):
            condition = str(rp.get("condition") or "")
            attempts = rp.get("max_attempts")
            policy = cls(_MODES.get(condition, condition) or "no", int(attempts or 0))
        return policy


_MODES = {"none": "no", "any": "always"}


@dataclass(frozen=True)
class LocalRun:
    command: tuple[str, ...] | None
    cwd: Path
    env: Mapping[str, str]

    def __repr__(self) -> str:
        return dataclass_repr(self, secret_values(self.env))


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: str
    command: tuple[str, ...]
    environment: Mapping[str, str]
    depends_on: tuple[Dependency, ...]
    healthcheck: Healthcheck | None
    ports: tuple[PortMapping, ...]
    profiles: tuple[str, ...]
    stop_signal: str | None  # None: the backend's default for this kind of service
    stop_grace_period: float
    local: LocalRun
    probe: ProbeSpec
    url: str | None = None  # given for the external backend
    entrypoint: tuple[str, ...] | None = None  # None: the image's own
    volumes: tuple[VolumeMount, ...] = ()
    # The service as `docker compose config --format json` prints the fields above.
    compose: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    extension: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    job: bool = False  # x-pyairtable.job: a one-shot service, ready once it exited 0
    # x-pyairtable.job.inputs, absolute: what its result depends on (state/jobsnap.py)
    job_inputs: tuple[str, ...] = ()
    # A stack placed over several backends (--pyairtable-local): the backend this service
    # runs on ("" = the stack's), and the host entries its container is given besides the
    # compose file's own ("name:address"), to reach the services run on the host.
    backend: str = ""
    added_hosts: tuple[str, ...] = ()
    restart: RestartPolicy = field(default_factory=RestartPolicy)

    def __repr__(self) -> str:
        return dataclass_repr(self, self.secret_values(), self.identifiers())

    def secret_values(self) -> set[str]:
        """Values of this service that must never be printed: those of secret-named
        variables and keys (environment, local env, x-pyairtable), passwords in its URLs
        and the values of secret flags on its command lines."""
        from .identifiers import service_sources

        return {value for _, _, value in service_sources(self) if worth_masking(value)}

    def identifiers(self) -> dict[str, str]:
        """Its names (service, container, image, users, databases, hosts, paths, the
        words of its commands), which masking never touches."""
        from .identifiers import code_words, service_identifiers

        found = service_identifiers(self)
        for name, kind in code_words(self, self.secret_values()).items():
            found.setdefault(name, kind)
        return found

    @property
    def fixture_name(self) -> str:
        return fixture_name(self.name)

    @property
    def image_kind(self) -> str:
        """'postgres' or 'redis' when the image is one of those servers, else ''."""
        base = self.image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
        for kind in ("postgres", "redis"):
            if base.startswith(kind):
                return kind
        return ""

    def host_address(self, container_port: int | None = None) -> str:
        """Where this machine reaches the port published for ``container_port``: its
        ``host_ip`` when it names one address (``[::1]`` bracketed, for URLs), else
        127.0.0.1 (published on every address, or not at all)."""
        for mapping in self.ports:
            if container_port is None or mapping.container == container_port:
                ip = mapping.host_ip
                if ip in ("", "0.0.0.0", "::"):  # noqa: S104 (reading a mapping, not binding)
                    break
                return f"[{ip}]" if ":" in ip else ip
        return "127.0.0.1"

    def host_port(self, container_port: int | None = None) -> int | None:
        for mapping in self.ports:
            if container_port is None or mapping.container == container_port:
                return mapping.host or mapping.container
        return None


@dataclass(frozen=True)
class StackSpec:
    compose_file: Path  # the first of compose_files
    services: Mapping[str, ServiceSpec]
    variables: Mapping[str, str] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()
    inactive: tuple[str, ...] = ()
    compose_files: tuple[Path, ...] = ()
    name: str = ""  # the compose project name
    warnings: tuple[str, ...] = ()  # unset variables, obsolete keys: worth saying once
    extensions: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __repr__(self) -> str:
        return dataclass_repr(self, self.secret_values(), self.identifiers())

    def secret_values(self) -> list[str]:
        """Values that must never be printed: variables whose name looks like a secret
        (the environment's too), passwords in their URLs, every service's secrets and
        those of the top-level ``x-`` blocks; longest first."""
        from .identifiers import stack_sources

        found = {value for _, _, value in stack_sources(self) if worth_masking(value)}
        return sorted(found, key=len, reverse=True)

    def identifiers(self) -> dict[str, str]:
        """The stack's names and paths (project, services, images, users, databases,
        hosts, the project's files, the words of its commands), each with what it is:
        masking never touches them."""
        from .identifiers import stack_identifiers

        return stack_identifiers(self)

    def redactor(self) -> Redactor:
        """What every output of this stack passes through (made once)."""
        made = self.__dict__.get("_redactor")
        if made is None:
            made = Redactor(self.secret_values(), self.identifiers())
            object.__setattr__(self, "_redactor", made)
        return made

    def secret_notes(self) -> list[str]:
        """A warning per secret masked only where it appears as a secret (it equals a
        name, or is short or an ordinary word), naming its service and variable."""
        from .identifiers import stack_sources, weak_notes

        return weak_notes(stack_sources(self), self.redactor().weak)

    def require(self, names: Iterable[str]) -> list[str]:
        names = list(names)
        unknown = [n for n in names if n not in self.services]
        if unknown:
            hint = " Fix: name one of them."
            if any(n in self.inactive for n in unknown):
                hint = (
                    " Some are in an inactive profile. Fix: activate it with --pyairtable-profile."
                )
            raise UnknownServiceError(
                f"unknown service(s) {', '.join(unknown)} in {self.compose_file.name}; "
                f"active services are: {', '.join(self.services)}.{hint}"
            )
        return names


def load_stack(
    compose_file: Path | Sequence[Path],
    *,
    env_file: Path | Sequence[Path] | None = None,
    profiles: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    project_dir: Path | None = None,
    overrides: Mapping[str, str] | None = None,
) -> StackSpec:
    """Read the compose file(s), merged in order, as ``docker compose`` would.

    ``env_file`` replaces the project ``.env`` (and ``COMPOSE_ENV_FILES``); ``profiles``
    replaces ``COMPOSE_PROFILES``; ``environ`` defaults to ``os.environ``; ``overrides``
    are variables set over it, as if in the environment (free ports: session/ports.py).
    """
    from .loader import load_model
    from .project import Inputs

    files = (compose_file,) if isinstance(compose_file, str | Path) else tuple(compose_file)
    env_files = (env_file,) if isinstance(env_file, str | Path) else env_file
    inputs = Inputs(
        files=tuple(Path(os.path.abspath(f)) for f in files),
        env_files=None if env_files is None else tuple(Path(os.path.abspath(f)) for f in env_files),
        profiles=tuple(profiles),
        environ={**(os.environ if environ is None else environ), **(overrides or {})},
        project_dir=project_dir,
    )
    return build_stack(load_model(inputs))


def build_stack(model: Model) -> StackSpec:
    from .service import build_service

    services = {
        name: build_service(name, body, model.variables, model.working_dir, model.record)
        for name, body in model.services.items()
    }
    return StackSpec(
        compose_file=model.files[0],
        services=MappingProxyType(services),
        variables=MappingProxyType(model.variables),
        profiles=model.profiles,
        inactive=tuple(model.inactive),
        compose_files=model.files,
        name=model.name,
        warnings=tuple(model.record.warnings),
        extensions=MappingProxyType(model.extensions),
    )
