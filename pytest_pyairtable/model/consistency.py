"""Profiles, and the project-wide checks compose makes once every file is merged.

A service without ``profiles`` is always active; one with profiles is active when one of
them is (``*`` activates all). Then, as compose: every active service has an image or a
build, names only defined networks, volumes, secrets and configs, depends only on
services that exist (an inactive one only with ``required: false``), and the
dependencies form no cycle. All problems are reported together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..support.errors import ConfigError, UnknownServiceError
from .graph import check_acyclic

Services = dict[str, dict[str, Any]]


def split_profiles(services: Services, profiles: Sequence[str]) -> tuple[Services, Services]:
    active: Services = {}
    inactive: Services = {}
    for name, svc in services.items():
        wanted = svc.get("profiles") or []
        on = not wanted or "*" in profiles or any(p in wanted for p in profiles)
        (active if on else inactive)[name] = svc
    return active, inactive


def check_consistency(active: Services, inactive: Services, project: dict[str, Any]) -> None:
    defined = {k: set(project.get(k) or {}) for k in ("networks", "volumes", "secrets", "configs")}
    problems: list[str] = []
    unknown: list[str] = []
    for name, svc in active.items():
        where = f"service '{name}'"
        problems += _resources(where, svc, defined)
        problems += _checks(where, svc, active)
        for dep, opts in (svc.get("depends_on") or {}).items():
            if dep in inactive and opts.get("required", True):
                problems.append(
                    f"{where} depends on '{dep}', whose profile is not active. Fix: activate "
                    "it with --pyairtable-profile, or mark the dependency `required: false`."
                )
            elif dep not in active and dep not in inactive:
                unknown.append(
                    f"{where} depends on '{dep}', which the compose file(s) do not define. "
                    "Fix: correct the name or add the service."
                )
    problems += unknown + _file_objects(project) + _container_names(active)
    if len(problems) == 1:
        raise (UnknownServiceError if unknown else ConfigError)(problems[0])
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"{len(problems)} problem(s) in the compose file(s):\n{lines}")
    check_acyclic({n: list(s.get("depends_on") or {}) for n, s in active.items()})


def _container_names(active: Services) -> list[str]:
    """A container name is one container's: two active services may not share one, and
    a service with one may not run more than one replica (compose refuses both)."""
    problems: list[str] = []
    owner: dict[str, str] = {}
    for name, svc in active.items():
        container = svc.get("container_name")
        if not isinstance(container, str) or not container:
            continue
        if container in owner:
            problems.append(
                f"service '{name}': container name '{container}' is already that of service "
                f"'{owner[container]}'. Fix: give each its own container_name, or remove one."
            )
        owner.setdefault(container, name)
        replicas = [(k, v) for k, v in (("scale", svc.get("scale")),
                    ("deploy.replicas", (svc.get("deploy") or {}).get("replicas")))
                    if isinstance(v, int) and not isinstance(v, bool) and v > 1]  # fmt: skip
        for key, count in replicas:
            problems.append(
                f"service '{name}': {key} is {count}, but container_name '{container}' names "
                "one container. Fix: remove container_name, or run one replica."
            )
    return problems


def _file_objects(project: dict[str, Any]) -> list[str]:
    """A secret needs file or environment, a config also may have content (unless
    external, or made by a driver)."""
    problems = []
    kinds = (("secrets", ("file", "environment")), ("configs", ("file", "environment", "content")))
    for kind, sources in kinds:
        for name, declared in (project.get(kind) or {}).items():
            body = declared or {}
            given = [k for k in sources if k in body]
            if len(given) > 1:
                problems.append(f"{kind}.{name}: {' and '.join(given)} exclude each other.")
            elif not given and "external" not in body and "driver" not in body:
                problems.append(f"{kind}.{name} needs one of {', '.join(sources)}.")
    return problems


def _resources(where: str, svc: dict[str, Any], defined: dict[str, set[str]]) -> list[str]:
    problems = []
    for net in svc.get("networks") or {}:
        if net != "default" and net not in defined["networks"]:
            problems.append(f"{where} uses network '{net}', not declared under networks:.")
    for volume in svc.get("volumes") or []:
        source = volume.get("source") if isinstance(volume, dict) else None
        if volume.get("type") == "volume" and source and source not in defined["volumes"]:
            problems.append(
                f"{where} mounts volume '{source}', not declared under volumes:. "
                f"Fix: add volumes: {{{source}: {{}}}} at the top level."
            )
    for kind in ("secrets", "configs"):
        for item in svc.get(kind) or []:
            source = item.get("source") if isinstance(item, dict) else item
            if source not in defined[kind]:
                problems.append(f"{where} uses {kind[:-1]} '{source}', not under {kind}:.")
    return problems


def _checks(where: str, svc: dict[str, Any], active: Services) -> list[str]:
    problems = []
    if not svc.get("image") and "build" not in svc and "provider" not in svc:
        problems.append(f"{where} has neither an image nor a build. Fix: add image: NAME.")
    if svc.get("network_mode") and svc.get("networks"):
        problems.append(f"{where} sets both network_mode and networks. Fix: keep one.")
    mode = svc.get("network_mode")
    if isinstance(mode, str) and mode.startswith("service:") and mode[8:] not in active:
        problems.append(f"{where}: network_mode names '{mode[8:]}', not an active service.")
    test = (svc.get("healthcheck") or {}).get("test")
    if isinstance(test, list) and test and test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        problems.append(
            f"{where}: healthcheck.test must start with CMD, CMD-SHELL or NONE, got {test!r}."
        )
    return problems
