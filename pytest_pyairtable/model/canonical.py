"""compose's canonical form of a service, and the normalisation after all files merged.

``canonical`` turns short syntaxes into long ones (``depends_on: [a]`` into
``{a: {condition: service_started, required: true}}``, ``env_file: x.env`` into
``[{path: x.env, required: true}]``, short ports and volumes into mappings, ``build: .``
into ``{context: .}``). ``resolve_paths`` makes relative paths absolute against the
directory of the project (or of the included or extended file) that wrote them.
``normalize`` adds what compose derives: the dependencies implied by ``links``,
``network_mode: service:x``, ``volumes_from`` ...; ``KEY`` environment entries taken from
the variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..support.errors import ConfigError
from .ports import canonical_ports, valid_ip, with_defaults
from .volumes import clean, parse_volume, tmpfs_bytes

Service = dict[str, Any]


def canonical(services: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _canonical_service(name, body) if isinstance(body, dict) else body
        for name, body in services.items()
    }


def _canonical_service(name: str, svc: Service) -> Service:
    where = f"services.{name}"
    out = dict(svc)
    if "depends_on" in svc:
        out["depends_on"] = _depends_on(svc["depends_on"], f"{where}.depends_on")
    if "env_file" in svc:
        entries = svc["env_file"]
        entries = [entries] if isinstance(entries, str) else entries or []
        out["env_file"] = [
            {"path": e, "required": True} if isinstance(e, str) else {"required": True, **e}
            for e in entries
        ]
    if isinstance(svc.get("ports"), list):
        out["ports"] = canonical_ports(svc["ports"], f"{where}.ports")
    if isinstance(svc.get("volumes"), list):
        out["volumes"] = [
            parse_volume(v, f"{where}.volumes[{n}]")
            if isinstance(v, str)
            else tmpfs_bytes(v, f"{where}.volumes[{n}]")
            if isinstance(v, dict)
            else v
            for n, v in enumerate(svc["volumes"])
        ]
    if isinstance(svc.get("build"), str):
        out["build"] = {"context": svc["build"]}
    if isinstance(svc.get("networks"), list):
        out["networks"] = dict.fromkeys(svc["networks"])
    if isinstance(svc.get("dns"), str):
        out["dns"] = [svc["dns"]]
    return out


def _depends_on(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, list):
        return {str(n): {"condition": "service_started", "required": True} for n in value}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: expected a list or a mapping, got {value!r}. Fix: list the services."
        )
    result = {}
    for name, dep in value.items():
        if not isinstance(dep, dict):
            raise ConfigError(
                f"{where}.{name}: expected a mapping such as {{condition: service_healthy}}, "
                f"got {dep!r}."
            )
        result[name] = {"condition": "service_started", "required": True, **dep}
    return result


def finish(services: dict[str, Any], base: Path, variables: Mapping[str, str]) -> dict[str, Any]:
    """After a project's (or an include's) files merged: defaults, checks, absolute paths,
    list-form ``environment`` entries taken from the variables."""
    result = {}
    for name, body in services.items():
        if not isinstance(body, dict):
            result[name] = body
            continue
        svc = dict(body)
        if isinstance(svc.get("ports"), list):
            svc["ports"] = [with_defaults(p) if isinstance(p, dict) else p for p in svc["ports"]]
            for n, port in enumerate(svc["ports"]):
                ip = port.get("host_ip") if isinstance(port, dict) else None
                if isinstance(ip, str) and not valid_ip(ip):
                    raise ConfigError(
                        f"services.{name}.ports[{n}]: invalid host_ip {ip!r}. "
                        "Fix: an IPv4 or IPv6 address, e.g. 127.0.0.1."
                    )
        if isinstance(svc.get("build"), dict):
            svc["build"] = {"context": ".", **svc["build"]}
        _resolve_paths(svc, base)
        if isinstance(svc.get("environment"), list):
            svc["environment"] = _resolve_list(svc["environment"], variables)
        result[name] = svc
    return result


def _resolve_list(env: list[Any], variables: Mapping[str, str]) -> list[Any]:
    """``- KEY`` (no ``=``) takes the variable's value, when there is one."""
    return [
        f"{e}={variables[e]}" if isinstance(e, str) and "=" not in e and e in variables else e
        for e in env
    ]


def absolute(base: Path, path: str) -> str:
    path = os.path.expanduser(path) if path.startswith("~") else path
    return path if not path or os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def _resolve_paths(svc: Service, base: Path) -> None:
    if isinstance(svc.get("env_file"), list):
        svc["env_file"] = [
            {**e, "path": absolute(base, e["path"])}
            if isinstance(e, dict) and isinstance(e.get("path"), str)
            else e
            for e in svc["env_file"]
        ]
    if isinstance(svc.get("volumes"), list):
        svc["volumes"] = [
            {**v, "source": absolute(base, v["source"])}
            if isinstance(v, dict) and v.get("type") == "bind" and isinstance(v.get("source"), str)
            else v
            for v in svc["volumes"]
        ]
    build = svc.get("build")
    if isinstance(build, dict) and isinstance(build.get("context"), str):
        context = build["context"]
        remote = ("://" in context or context.startswith("service:")) or context.startswith(
            ("https://", "http://", "git://", "ssh://", "github.com/", "git@")
        )
        if not remote:
            svc["build"] = {**build, "context": absolute(base, context)}
    x = svc.get("x-pyairtable")
    if isinstance(x, dict) and isinstance(x.get("local"), dict):
        cwd = x["local"].get("cwd", ".")
        if isinstance(cwd, str):  # ours: relative to the project that wrote it, like env_file
            svc["x-pyairtable"] = {**x, "local": {**x["local"], "cwd": absolute(base, cwd)}}


_NAMESPACES = ("network_mode", "ipc", "pid", "uts", "cgroup")


def normalize(services: dict[str, Any], variables: Mapping[str, str]) -> dict[str, Any]:
    result = {}
    for name, body in services.items():
        svc = dict(body)
        env = svc.get("environment")
        if isinstance(env, dict):
            svc["environment"] = {k: variables.get(k) if v is None else v for k, v in env.items()}
        elif isinstance(env, list):
            svc["environment"] = _resolve_list(env, variables)
        depends = dict(svc.get("depends_on") or {})
        implied = [(link.split(":")[0] if link.count(":") == 1 else link, True)
                   for link in svc.get("links") or [] if isinstance(link, str)]  # fmt: skip
        for key in _NAMESPACES:
            ref = svc.get(key)
            if isinstance(ref, str) and ref.startswith("service:"):
                implied.append((ref[len("service:") :], True))
        for source in svc.get("volumes_from") or []:
            if isinstance(source, str) and not source.startswith("container:"):
                implied.append((source.split(":")[0], False))
        for dep, restart in implied:
            depends.setdefault(
                dep, {"condition": "service_started", "restart": restart, "required": True}
            )
        if depends:
            svc["depends_on"] = depends
        if isinstance(svc.get("volumes"), list):
            svc["volumes"] = [
                {**v, "target": clean(v["target"])}
                if isinstance(v, dict) and isinstance(v.get("target"), str)
                else v
                for v in svc["volumes"]
            ]
        result[name] = svc
    return result
