"""The stack as plain immutable data, read from a Compose Specification file.

``load_stack`` is the only entry point: it reads YAML (anchors and merge keys
included), interpolates with compose's precedence (shell environment over ``.env``),
drops services of inactive profiles, validates everything a user can get wrong, and
returns a ``StackSpec``. Nothing here starts anything.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from ..errors import ComposeFileError, ConfigError, UnknownServiceError
from .durations import parse_duration
from .graph import check_acyclic
from .interpolate import Interpolator, parse_env_file
from .probespec import ProbeSpec, derive_probe, parse_probe, redis_password

# libyaml's safe loader parses a compose file several times faster than the pure-Python
# one, and every pytest run reads the file: use it when PyYAML was built with it.
SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "KEY")
_X_KEYS = ("local", "probe", "url", "job")
_LOCAL_KEYS = ("command", "cwd", "env")


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...] | None  # argv; None when compose would run no check
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    start_interval: float = 5.0

    @property
    def budget(self) -> float:
        """How long compose itself would wait before calling the service unhealthy."""
        return self.start_period + self.retries * (self.interval + self.timeout)


@dataclass(frozen=True)
class Dependency:
    name: str
    condition: str = "service_started"
    required: bool = True


@dataclass(frozen=True)
class PortMapping:
    container: int
    host: int | None
    host_ip: str = ""


@dataclass(frozen=True)
class LocalRun:
    command: tuple[str, ...] | None
    cwd: Path
    env: Mapping[str, str]


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
    job: bool = False  # x-pyairtable.job: a one-shot service, ready once it exited 0

    @property
    def fixture_name(self) -> str:
        return "pyairtable_" + self.name.replace("-", "_").replace(".", "_")

    @property
    def image_kind(self) -> str:
        """'postgres' or 'redis' when the image is one of those servers, else ''."""
        base = self.image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
        for kind in ("postgres", "redis"):
            if base.startswith(kind):
                return kind
        return ""

    def host_port(self, container_port: int | None = None) -> int | None:
        for mapping in self.ports:
            if container_port is None or mapping.container == container_port:
                return mapping.host or mapping.container
        return None


@dataclass(frozen=True)
class StackSpec:
    compose_file: Path
    services: Mapping[str, ServiceSpec]
    variables: Mapping[str, str] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()
    inactive: tuple[str, ...] = ()

    def secret_values(self) -> list[str]:
        """Values that must never be printed: variables whose name looks like a secret."""
        found: set[str] = set()
        pools: list[Mapping[str, str]] = [self.variables]
        pools += [s.environment for s in self.services.values()]
        pools += [s.local.env for s in self.services.values()]
        for pool in pools:
            for name, value in pool.items():
                if value and any(m in name.upper() for m in SECRET_MARKERS):
                    found.add(value)
        for svc in self.services.values():  # passwords given only in a URL or a command line
            for url in (svc.probe.target, svc.url or ""):
                password = urlsplit(url).password if "://" in url else None
                if password:
                    found.add(unquote(password))
            if svc.image_kind == "redis" and redis_password(svc):
                found.add(redis_password(svc))
        return sorted(found, key=len, reverse=True)

    def require(self, names: Iterable[str]) -> list[str]:
        names = list(names)
        unknown = [n for n in names if n not in self.services]
        if unknown:
            hint = ""
            if any(n in self.inactive for n in unknown):
                hint = " Some are in an inactive profile: activate it with --pyairtable-profile."
            raise UnknownServiceError(
                f"unknown service(s) {', '.join(unknown)} in {self.compose_file.name}; "
                f"active services are: {', '.join(self.services)}.{hint}"
            )
        return names


def load_stack(
    compose_file: Path,
    *,
    env_file: Path | None = None,
    profiles: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> StackSpec:
    compose_file = Path(compose_file).resolve()
    environ = dict(os.environ if environ is None else environ)
    raw = _read_yaml(compose_file)
    dotenv_path = env_file if env_file is not None else compose_file.parent / ".env"
    dotenv: dict[str, str] = {}
    if env_file is not None or dotenv_path.is_file():
        dotenv = parse_env_file(Path(dotenv_path), environ)
    variables = {**dotenv, **environ}

    interp = Interpolator(variables)
    doc = interp.walk({k: v for k, v in raw.items() if not str(k).startswith("x-")})
    interp.raise_missing()

    services_raw = doc.get("services")
    if not isinstance(services_raw, Mapping) or not services_raw:
        raise ComposeFileError(
            f"{compose_file}: no 'services:' mapping. Fix: declare at least one service."
        )
    active_profiles = tuple(profiles) or tuple(
        p for p in variables.get("COMPOSE_PROFILES", "").split(",") if p
    )
    services: dict[str, ServiceSpec] = {}
    inactive: list[str] = []
    for name, body in services_raw.items():
        if not isinstance(body, Mapping):
            raise ComposeFileError(f"service '{name}': expected a mapping, got {body!r}.")
        svc_profiles = tuple(str(p) for p in body.get("profiles") or ())
        if svc_profiles and not set(svc_profiles) & set(active_profiles):
            inactive.append(str(name))
            continue
        services[str(name)] = _service(str(name), body, compose_file.parent, variables)

    _check_dependencies(services, inactive, compose_file)
    check_acyclic({n: [d.name for d in s.depends_on] for n, s in services.items()})
    return StackSpec(
        compose_file=compose_file,
        services=MappingProxyType(services),
        variables=MappingProxyType(variables),
        profiles=active_profiles,
        inactive=tuple(inactive),
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ComposeFileError(
            f"cannot read compose file {path}: {exc.strerror}. "
            "Fix: pass the right path with --pyairtable-compose-file."
        ) from None
    try:
        doc = yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a safe loader, libyaml's when built
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        context = ""
        if exc.context and exc.context_mark:
            context = f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise ComposeFileError(
            f"{where}: YAML error: {exc.problem}{context}. Fix the file at that line."
        ) from None
    except yaml.YAMLError as exc:
        raise ComposeFileError(f"{path}: YAML error: {exc}") from None
    if not isinstance(doc, dict):
        raise ComposeFileError(f"{path}: expected a mapping at the top level.")
    return doc


def _service(
    name: str, body: Mapping[str, Any], base: Path, variables: Mapping[str, str]
) -> ServiceSpec:
    where = f"service '{name}'"
    environment = _env_files(body.get("env_file"), base, where)
    environment.update(_environment(body.get("environment"), variables))
    x = body.get("x-pyairtable") or {}
    _only_keys(x, _X_KEYS, f"{where}: x-pyairtable")
    local_raw = x.get("local") or {}
    _only_keys(local_raw, _LOCAL_KEYS, f"{where}: x-pyairtable.local")
    local = LocalRun(
        command=_argv(local_raw["command"]) if local_raw.get("command") else None,
        cwd=(base / str(local_raw.get("cwd", "."))).resolve(),
        env=MappingProxyType({str(k): str(v) for k, v in (local_raw.get("env") or {}).items()}),
    )
    grace = body.get("stop_grace_period", "10s")
    spec = ServiceSpec(
        name=name,
        image=str(body.get("image") or ""),
        command=_argv(body["command"]) if body.get("command") else (),
        environment=MappingProxyType(environment),
        depends_on=_depends_on(body.get("depends_on"), where),
        healthcheck=_healthcheck(body.get("healthcheck"), where),
        ports=tuple(_ports(body.get("ports") or [], where)),
        profiles=tuple(str(p) for p in body.get("profiles") or ()),
        stop_signal=str(body["stop_signal"]) if body.get("stop_signal") else None,
        stop_grace_period=parse_duration(grace, where=f"{where}: stop_grace_period"),
        local=local,
        probe=ProbeSpec("started", ""),
        url=str(x["url"]) if x.get("url") else None,
        job=_flag(x.get("job", False), f"{where}: x-pyairtable.job"),
    )
    probe = parse_probe(x["probe"], where) if x.get("probe") else derive_probe(spec)
    return _replace_probe(spec, probe)


def _replace_probe(spec: ServiceSpec, probe: ProbeSpec) -> ServiceSpec:
    from dataclasses import replace

    return replace(spec, probe=probe)


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}.")
    return value


def _only_keys(block: Any, allowed: Sequence[str], where: str) -> None:
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {block!r}.")
    unknown = [str(k) for k in block if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}. Valid keys: {', '.join(allowed)}."
        )


def _argv(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(shlex.split(value))
    return tuple(str(v) for v in value)


def _environment(value: Any, variables: Mapping[str, str]) -> dict[str, str]:
    result: dict[str, str] = {}
    if isinstance(value, Mapping):
        items: Iterable[tuple[str, Any]] = value.items()
    else:
        items = [
            (item.split("=", 1)[0], item.split("=", 1)[1] if "=" in item else None)
            for item in value or []
        ]
    for key, val in items:
        if val is None:  # `- KEY` or `KEY:` takes the value from the shell/.env
            if key in variables:
                result[str(key)] = variables[key]
            continue
        result[str(key)] = "true" if val is True else "false" if val is False else str(val)
    return result


def _env_files(value: Any, base: Path, where: str) -> dict[str, str]:
    result: dict[str, str] = {}
    entries = [value] if isinstance(value, str | Mapping) else list(value or [])
    for entry in entries:
        path, required = (
            (entry, True)
            if isinstance(entry, str)
            else (entry.get("path"), bool(entry.get("required", True)))
        )
        full = base / str(path)
        if not full.is_file():
            if required:
                raise ConfigError(
                    f"{where}: env_file {full} does not exist. "
                    "Fix: create it, or mark it `required: false`."
                )
            continue
        result.update(parse_env_file(full))
    return result


def _depends_on(value: Any, where: str) -> tuple[Dependency, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(Dependency(str(v)) for v in value)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: depends_on must be a list or a mapping.")
    deps = []
    for dep, given in value.items():
        opts = given or {}
        condition = str(opts.get("condition", "service_started"))
        if condition not in CONDITIONS:
            raise ConfigError(
                f"{where}: depends_on.{dep}: unknown condition {condition!r}. "
                f"Valid: {', '.join(CONDITIONS)}."
            )
        deps.append(Dependency(str(dep), condition, bool(opts.get("required", True))))
    return tuple(deps)


def _healthcheck(value: Any, where: str) -> Healthcheck | None:
    if not value or value.get("disable"):
        return None
    test = value.get("test")
    argv: tuple[str, ...] | None
    if test is None:
        argv = None
    elif isinstance(test, str):
        argv = ("/bin/sh", "-c", test)
    elif test and test[0] == "NONE":
        return None
    elif test and test[0] == "CMD":
        argv = tuple(str(t) for t in test[1:])
    elif test and test[0] == "CMD-SHELL":
        argv = ("/bin/sh", "-c", " ".join(str(t) for t in test[1:]))
    else:
        raise ConfigError(
            f"{where}: healthcheck.test must start with CMD, CMD-SHELL or NONE, got {test!r}."
        )
    times = {
        key: parse_duration(value[key], where=f"{where}: healthcheck.{key}")
        for key in ("interval", "timeout", "start_period", "start_interval")
        if key in value
    }
    retries = value.get("retries", 3)
    if not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"{where}: healthcheck.retries must be a whole number, got {retries!r}.")
    return Healthcheck(test=argv, retries=retries, **times)


_SHORT_PORT = re.compile(
    r"^(?:(?P<ip>\[[^\]]+\]|\d+\.\d+\.\d+\.\d+):)?(?:(?P<host>\d+(?:-\d+)?)?:)?(?P<cont>\d+(?:-\d+)?)(?:/\w+)?$"
)


def _ports(value: Sequence[Any], where: str) -> Iterable[PortMapping]:
    for entry in value:
        if isinstance(entry, Mapping):
            published = entry.get("published")
            yield PortMapping(
                container=int(entry["target"]),
                host=int(str(published).split("-")[0]) if published not in (None, "") else None,
                host_ip=str(entry.get("host_ip", "")),
            )
            continue
        match = _SHORT_PORT.match(str(entry))
        if not match:
            raise ConfigError(
                f"{where}: cannot read port {entry!r}. Fix: use HOST:CONTAINER, e.g. 8000:8000."
            )
        conts = _port_range(match.group("cont"))
        hosts = _port_range(match.group("host")) if match.group("host") else [None] * len(conts)
        if len(hosts) != len(conts):
            raise ConfigError(f"{where}: port range {entry!r} has unequal sides.")
        for host, cont in zip(hosts, conts, strict=True):
            yield PortMapping(
                container=cont, host=host, host_ip=(match.group("ip") or "").strip("[]")
            )


def _port_range(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def _check_dependencies(
    services: Mapping[str, ServiceSpec], inactive: Sequence[str], compose_file: Path
) -> None:
    for svc in services.values():
        for dep in svc.depends_on:
            if dep.name in services or not dep.required:
                continue
            if dep.name in inactive:
                raise ConfigError(
                    f"service '{svc.name}' depends on '{dep.name}', whose profile is not active. "
                    f"Fix: activate it with --pyairtable-profile, or mark the dependency "
                    "`required: false`."
                )
            raise UnknownServiceError(
                f"service '{svc.name}' depends on '{dep.name}', which {compose_file.name} does "
                "not define. Fix: correct the name or add the service."
            )
