"""One ``ServiceSpec`` from a service in compose's canonical form.

Field by field as compose decodes it: ``environment`` over its ``env_file`` entries (whose
``${X}`` sees the project variables, then the service's environment), numbers printed as
Go prints them, ``command``/``entrypoint`` strings split like go-shellwords, durations
parsed as compose parses them, ``healthcheck.retries`` converted, ``depends_on`` with
``condition``, ``required`` and ``restart``. Next to the typed fields, ``compose`` keeps
the service as ``docker compose config --format json`` prints these fields.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..support.errors import ConfigError
from . import shellwords
from .dotenv import read_env_file
from .durations import format_duration, go_duration, seconds
from .interpolate import to_bool
from .loader import Record
from .probespec import ProbeSpec, derive_probe, parse_probe
from .spec import (
    Dependency,
    Healthcheck,
    LocalRun,
    PortMapping,
    RestartPolicy,
    ServiceSpec,
    VolumeMount,
)
from .values import sprint

_X_KEYS = ("local", "probe", "url", "job")
_LOCAL_KEYS = ("command", "cwd", "env")
# Names compose prints as given; masking never touches them (model/identifiers.py).
NAMES = ("container_name", "hostname", "domainname")
_UINT64 = (1 << 64) - 1


def build_service(
    name: str, svc: Mapping[str, Any], variables: Mapping[str, str], base: Path, record: Record
) -> ServiceSpec:
    where = f"service '{name}'"
    compose: dict[str, Any] = {}
    for key in ("command", "entrypoint"):
        compose[key] = _argv(svc.get(key), f"{where}: {key}")
    environment = _environment(svc, variables, record, where)
    if environment:
        compose["environment"] = environment
    depends_on = _depends_on(svc.get("depends_on") or {}, where)
    if depends_on:
        compose["depends_on"] = {d.name: _dependency_json(d) for d in depends_on}
    healthcheck, declared = _healthcheck(svc.get("healthcheck"), where)
    if declared is not None:
        compose["healthcheck"] = declared
    ports = [_port(p, f"{where}: ports[{n}]") for n, p in enumerate(svc.get("ports") or [])]
    if ports:
        compose["ports"] = [_port_json(p) for p in svc["ports"]]
    for key in (
        "image",
        "profiles",
        "stop_signal",
        "volumes",
        "pull_policy",
        "build",
        "platform",
        *NAMES,
    ):
        if svc.get(key):
            compose[key] = svc[key]
    if isinstance(svc.get("restart"), str) and svc["restart"]:
        compose["restart"] = svc["restart"]
    for key in ("network_mode", "container_name", "hostname"):  # how others reach it
        if isinstance(svc.get(key), str) and svc[key]:
            compose[key] = svc[key]
    grace_ns = 10 * 1_000_000_000
    if svc.get("stop_grace_period") is not None:
        grace_ns = _duration(svc["stop_grace_period"], f"{where}: stop_grace_period")
        compose["stop_grace_period"] = format_duration(grace_ns)
    x = svc.get("x-pyairtable") or {}
    _only_keys(x, _X_KEYS, f"{where}: x-pyairtable")
    local_raw = x.get("local") or {}
    _only_keys(local_raw, _LOCAL_KEYS, f"{where}: x-pyairtable.local")
    spec = ServiceSpec(
        name=name,
        image=str(svc.get("image") or ""),
        command=compose["command"] or (),
        environment=MappingProxyType({k: v for k, v in environment.items() if v is not None}),
        depends_on=depends_on,
        healthcheck=healthcheck,
        ports=tuple(ports),
        profiles=tuple(svc.get("profiles") or ()),
        stop_signal=svc.get("stop_signal") or None,
        stop_grace_period=seconds(grace_ns),
        local=LocalRun(
            command=_argv(local_raw["command"], f"{where}: x-pyairtable.local.command")
            if local_raw.get("command")
            else None,
            cwd=Path(str(local_raw.get("cwd") or base)),
            env=MappingProxyType(
                {str(k): sprint(v) for k, v in (local_raw.get("env") or {}).items()}
            ),
        ),
        probe=ProbeSpec("started", ""),
        url=str(x["url"]) if x.get("url") else None,
        # the schema check refuses a value that is neither a boolean nor {inputs: [...]}
        job=x.get("job") is True or isinstance(x.get("job"), Mapping),
        job_inputs=_job_inputs(x.get("job"), base),
        entrypoint=compose["entrypoint"],
        volumes=tuple(_volume(v) for v in svc.get("volumes") or () if isinstance(v, dict)),
        compose=MappingProxyType({k: v for k, v in compose.items() if v is not None}),
        extension=MappingProxyType(dict(x)),
        restart=RestartPolicy.of(svc.get("restart"), svc.get("deploy")),
    )
    probe = parse_probe(x["probe"], where) if x.get("probe") else derive_probe(spec)
    from dataclasses import replace

    return replace(spec, probe=probe)


def _job_inputs(job: Any, base: Path) -> tuple[str, ...]:
    """``x-pyairtable.job.inputs``, each made absolute against the project directory (as
    ``local.cwd`` is); a glob stays a glob."""
    if not isinstance(job, Mapping):
        return ()
    return tuple(os.path.join(base, os.path.expanduser(str(p))) for p in job.get("inputs") or ())


def _argv(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return tuple(shellwords.split(value))
        except ValueError:
            raise ConfigError(
                f"{where}: cannot split {value!r} into words (an unclosed quote, or a '(' "
                "outside quotes). Fix: quote it, or write the command as a list."
            ) from None
    return tuple(sprint(v) for v in value)


def _environment(
    svc: Mapping[str, Any], variables: Mapping[str, str], record: Record, where: str
) -> dict[str, str | None]:
    own: dict[str, str | None] = {}
    declared = svc.get("environment") or {}
    if isinstance(declared, dict):
        own = {k: None if v is None else sprint(v) for k, v in declared.items()}
    else:
        for item in declared:
            key, sep, value = sprint(item).partition("=")
            if key and key[-1].isspace():
                raise ConfigError(
                    f"{where}: environment variable {key!r} ends with a space. Fix: remove it."
                )
            own[key] = value if sep else None
    result = {k: v for k, v in own.items() if v is not None}

    def lookup(key: str) -> str | None:
        return variables.get(key, own.get(key))

    for entry in svc.get("env_file") or ():
        path = Path(entry["path"])
        required = entry.get("required", True)
        try:
            required = to_bool(required) if isinstance(required, str) else bool(required)
        except ValueError:
            raise ConfigError(
                f"{where}: env_file {path}: required must be true or false, got {required!r}. "
                "Fix: write required: true or required: false."
            ) from None
        if not record.note(path):
            why = _unreadable(path)
            if why is not None:  # there, but not readable: compose fails, required or not
                raise ConfigError(
                    f"{where}: env_file {path} cannot be read: {why}. "
                    "Fix: point it at a readable file (a symlink loop or a path through a "
                    "file is none)."
                )
            if required:
                raise ConfigError(
                    f"{where}: env_file {path} does not exist. "
                    "Fix: create it, or mark it `required: false`."
                )
            continue
        read_env_file(path, lookup, result, fmt=str(entry.get("format") or ""), where=where)
    return {**result, **own}


def _unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be opened, or None when it simply does not exist."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _depends_on(value: Mapping[str, Any], where: str) -> tuple[Dependency, ...]:
    deps = []
    for name, opts in value.items():
        restart = opts.get("restart", False)
        restart = to_bool(restart) if isinstance(restart, str) else bool(restart)
        deps.append(Dependency(name, opts["condition"], bool(opts.get("required", True)), restart))
    return tuple(deps)


def _dependency_json(dep: Dependency) -> dict[str, Any]:
    return {"condition": dep.condition, **({"restart": True} if dep.restart else {}),
            "required": dep.required}  # fmt: skip


def _healthcheck(value: Any, where: str) -> tuple[Healthcheck | None, dict[str, Any] | None]:
    if value is None:
        return None, None
    declared: dict[str, Any] = {}
    test = value.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if test:
        declared["test"] = list(test)
    times: dict[str, Any] = {}
    for key in ("timeout", "interval", "retries", "start_period", "start_interval"):
        if key == "retries" and "retries" in value:
            declared["retries"] = _retries(value["retries"], f"{where}: healthcheck.retries")
        elif key in value:
            ns = _duration(value[key], f"{where}: healthcheck.{key}")
            declared[key] = format_duration(ns)
            if 0 < ns < _MIN_HEALTH_NS or ns < 0:  # compose prints it; the engine refuses
                times.setdefault("refused", _refusal(key, value[key], where))
                if ns > 0:
                    times[key] = seconds(ns)
            elif ns:  # 0: the engine's default, as if not written
                times[key] = seconds(ns)
    disable = value.get("disable", False)
    if to_bool(disable) if isinstance(disable, str) else bool(disable):
        declared["disable"] = True
        return None, declared
    argv: tuple[str, ...] | None = None
    if test:
        kind = test[0]
        if kind == "NONE":
            return None, declared
        argv = tuple(test[1:]) if kind == "CMD" else ("/bin/sh", "-c", " ".join(test[1:]))
    retries = declared.get("retries") or 3  # 0: the engine's default, 3
    return Healthcheck(test=argv, retries=retries, **times), declared


_MIN_HEALTH_NS = 1_000_000  # the engine refuses a healthcheck duration under 1ms, but 0
_EXAMPLES = {"start_period": "10s", "start_interval": "5s"}
_ENGINE_DEFAULTS = {
    "interval": "30s",
    "timeout": "30s",
    "start_period": "0s",
    "start_interval": "5s",
}


def _refusal(key: str, raw: Any, where: str) -> str:
    """Why the Docker engine refuses this healthcheck duration: ``docker compose config``
    prints it as given, and the service fails when it starts (as with compose's up)."""
    return (
        f"{where}: healthcheck.{key} is {raw!r}, and the Docker engine refuses a "
        f"healthcheck {key} under 1ms (0 means its default, {_ENGINE_DEFAULTS[key]}). "
        f"Fix: write a positive duration, e.g. {_EXAMPLES.get(key, '30s')}, or 0s for "
        "the default."
    )


def _retries(value: Any, where: str) -> int:
    finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    number = int(value) if finite and not isinstance(value, bool) else None
    if number is None or number < 0 or number > _UINT64:
        raise ConfigError(f"{where}: {value!r} is not a number of retries. Fix: write e.g. 3.")
    return number


def _duration(value: Any, where: str) -> int:
    try:
        return go_duration(str(value))
    except ValueError as exc:
        raise ConfigError(
            f"{where}: {value!r} is not a duration ({exc}). Fix: give the unit, e.g. "
            "30s, 1m30s, 500ms (units: ns, us, ms, s, m, h, d, w)."
        ) from None


def _port(entry: Mapping[str, Any], where: str) -> PortMapping:
    published = entry.get("published")
    published = None if published in (None, "") else sprint(published)
    first = (published or "").split("-")[0]
    target = entry.get("target", 0)
    if not isinstance(target, int | float) or isinstance(target, bool):
        raise ConfigError(f"{where}: target {target!r} is not a port number. Fix: e.g. 8080.")
    return PortMapping(
        container=int(target),
        host=int(first) if first.isascii() and first.isdigit() else None,
        host_ip=str(entry.get("host_ip") or ""),
        protocol=str(entry.get("protocol") or "tcp"),
        published=published,
    )


def _port_json(entry: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("name", "mode", "host_ip", "target", "published", "protocol", "app_protocol"):
        value = entry.get(key)
        if value not in (None, "", 0):
            out[key] = int(value) if key == "target" else sprint(value)
    return out


def _volume(entry: Mapping[str, Any]) -> VolumeMount:
    read_only = entry.get("read_only", False)
    read_only = to_bool(read_only) if isinstance(read_only, str) else bool(read_only)
    return VolumeMount(
        type=str(entry.get("type") or "volume"),
        source=str(entry.get("source") or ""),
        target=str(entry.get("target") or ""),
        read_only=read_only,
    )


def _only_keys(block: Any, allowed: tuple[str, ...], where: str) -> None:
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {block!r}. Fix: write KEY: value.")
    unknown = [str(k) for k in block if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}. Fix: correct the spelling; "
            f"valid keys: {', '.join(allowed)}."
        )
