"""Values that fit compose's types but not what a process, a socket or a probe can use.

``schema.check`` calls ``service_problems`` for each service after its shape checks:
ports in 1-65535 (a long-syntax port needs its ``target``, as compose says), no NUL
character anywhere (no argv, environment or path can hold one), environment names
without ``=``, a healthcheck ``CMD`` that names a command, an ``x-pyairtable.url`` that
parses. Each problem is a ``path: cause. Fix: ...`` line, like the shape checks'.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from ..redact import mask_patterns
from .probespec import url_problem

_URL_SCHEMES = ("http", "https", "postgres", "postgresql", "redis", "rediss", "tcp")


def service_problems(body: dict[str, Any], where: str) -> list[str]:
    out: list[str] = []
    for path, text in _strings(body, where):
        if "\0" in text:
            out.append(
                f"{path} holds a NUL character. Fix: remove it (no command, variable or "
                "path can carry one)."
            )
            break  # one is enough to say: the rest is the same mistake
    ports = body.get("ports")
    for n, port in enumerate(ports if isinstance(ports, list) else ()):
        if isinstance(port, dict):
            out += _long_port(port, f"{where}.ports[{n}]")
    x = body.get("x-pyairtable")
    local = x.get("local") if isinstance(x, dict) else None
    envs = {"environment": body.get("environment")}
    if isinstance(local, dict):
        envs["x-pyairtable.local.env"] = local.get("env")
    for key, env in envs.items():
        for name in env if isinstance(env, dict) else ():
            if "=" in name:
                out.append(
                    f"{where}.{key}: variable name {name!r} holds '='. Fix: write "
                    "NAME: value, the name without '='."
                )
    check = body.get("healthcheck")
    test = check.get("test") if isinstance(check, dict) else None
    if test == ["CMD"]:
        out.append(
            f"{where}.healthcheck.test names no command after CMD. Fix: e.g. "
            '["CMD", "curl", "-f", "http://localhost/health"], or ["NONE"].'
        )
    url = x.get("url") if isinstance(x, dict) else None
    if isinstance(url, str) and url:
        problem = url_problem(url, _URL_SCHEMES)
        if problem:
            out.append(
                f"{where}.x-pyairtable.url {mask_patterns(url)!r}: {problem}. "
                "Fix: write e.g. http://127.0.0.1:8000."
            )
    return out


def _long_port(port: dict[str, Any], where: str) -> list[str]:
    out = []
    target = port.get("target")
    if target is None:
        out.append(f"{where} is missing a target port. Fix: add target: CONTAINER_PORT.")
    elif _number(target) and not (_whole(target) and 0 <= target <= 65535):
        out.append(f"{where}.target {target!r} is not a port. Fix: use 1-65535.")
    published: Any = port.get("published")
    if _number(published):
        published = str(int(published)) if _whole(published) else repr(published)
    if isinstance(published, str) and published:
        parts = published.split("-")
        fits = len(parts) <= 2 and all(p.isascii() and p.isdigit() for p in parts)
        if not fits or any(int(p) > 65535 for p in parts):
            out.append(
                f"{where}.published {published!r} is not a port or a range of ports. "
                "Fix: use 1-65535, or e.g. 8000-8010."
            )
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: float) -> bool:
    return math.isfinite(value) and value == int(value)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string below ``value``, keys too, with its path (never its value)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", str(key)
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _strings(item, f"{path}[{n}]")
