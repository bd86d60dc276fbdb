"""What readiness means for a service, as data: from ``x-pyairtable.probe`` or derived.

Derivation follows what the compose file already says, so nobody writes it twice:
a postgres/redis image gets a protocol probe built from its environment and published
port; a healthcheck that curls or wgets a URL becomes an HTTP probe on the published
port; any other healthcheck command runs on the host; no healthcheck means "started".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from ..support.errors import ConfigError
from ..support.redact import dataclass_repr, mask_patterns
from .imageenv import file_env, postgres_env
from .regexcheck import nested_repeat

if TYPE_CHECKING:
    from .spec import ServiceSpec

PROBE_KINDS = ("http", "postgres", "redis", "tcp", "command", "log")
_MODIFIERS = ("status", "json", "tables", "migrations_table")
_URL_IN_TEST = re.compile(r"\b(?:curl|wget)\b.*?(https?://[^\s'\"|;&]+)")


@dataclass(frozen=True)
class ProbeSpec:
    kind: str  # one of PROBE_KINDS, or "started"
    target: str  # URL, DSN, host:port or regex; "" for started
    argv: tuple[str, ...] = ()
    status: int | None = None
    json: Mapping[str, Any] = field(default_factory=dict)
    tables: tuple[str, ...] = ()
    migrations_table: str | None = None

    def __repr__(self) -> str:
        return dataclass_repr(self)

    def describe(self) -> str:
        """What the probe checks, as shown to people: URL passwords and the values of
        secret flags masked (the service's own secrets are masked where it is shown)."""
        if self.kind == "started":
            return "process alive (service_started)"
        if self.kind == "command":
            return mask_patterns("command " + " ".join(self.argv))
        return mask_patterns(f"{self.kind} {self.target}")


def parse_probe(block: Any, where: str) -> ProbeSpec:
    if not isinstance(block, Mapping):
        raise ConfigError(
            f"{where}: x-pyairtable.probe must be a mapping, got {block!r}. "
            "Fix: e.g. probe: {http: 'http://127.0.0.1:8000/health'}."
        )
    unknown = [str(k) for k in block if k not in PROBE_KINDS + _MODIFIERS]
    if unknown:
        raise ConfigError(
            f"{where}: x-pyairtable.probe: unknown key(s) {', '.join(unknown)}. "
            f"Fix: correct the spelling; valid keys: {', '.join(PROBE_KINDS + _MODIFIERS)}."
        )
    kinds = [k for k in PROBE_KINDS if k in block]
    if len(kinds) != 1:
        raise ConfigError(
            f"{where}: x-pyairtable.probe needs exactly one of {', '.join(PROBE_KINDS)}, "
            f"got {', '.join(kinds) or 'none'}. Fix: keep one kind of check (a service "
            "that needs two checks: a command probe that runs both)."
        )
    kind = kinds[0]
    value = block[kind]
    argv: tuple[str, ...] = ()
    if kind == "command":
        argv = ("/bin/sh", "-c", value) if isinstance(value, str) else tuple(map(str, value))
        value = ""
    if kind == "command" and not argv:
        raise ConfigError(f"{where}: x-pyairtable.probe.command is empty. Fix: name a command.")
    problem = target_problem(kind, str(value))
    if problem:
        raise ConfigError(f"{where}: x-pyairtable.probe.{kind}: {problem}")
    status = block.get("status")
    if status is not None and (
        not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599
    ):
        raise ConfigError(
            f"{where}: x-pyairtable.probe.status must be an HTTP status (100-599), got "
            f"{status!r}. Fix: e.g. status: 200."
        )
    return ProbeSpec(
        kind=kind,
        target=str(value),
        argv=argv,
        status=status,
        json=dict(block.get("json") or {}),
        tables=tuple(str(t) for t in block.get("tables") or ()),
        migrations_table=block.get("migrations_table"),
    )


_SCHEMES = {
    "http": ("http", "https"),
    "postgres": ("postgres", "postgresql"),
    "redis": ("redis", "rediss", "unix"),
}
_EXAMPLES = {
    "http": "http://127.0.0.1:8000/health",
    "postgres": "postgresql://user:password@127.0.0.1:5432/db",
    "redis": "redis://:password@127.0.0.1:6379/0",
    "tcp": "127.0.0.1:5432",
}


def target_problem(kind: str, target: str) -> str | None:
    """Why a probe's target cannot be used (as ``cause. Fix: ...``), or None."""
    if kind == "log":
        try:
            re.compile(target)
        except re.error as exc:
            return f"{target!r} is not a regular expression ({exc}). Fix: correct it."
        if nested_repeat(target):
            return (
                f"{target!r} nests a repeat in a repeat (as in (a+)+): a line that almost "
                "matches takes exponential time to reject. Fix: repeat once, e.g. a+ for "
                "(a+)+, or (\\w+\\s)+ for (\\w+\\s?)+."
            )
        return None
    if kind == "tcp":
        target = "tcp://" + target
    elif kind not in _SCHEMES:
        return None
    problem = url_problem(target, _SCHEMES.get(kind, ("tcp",)), need_port=kind == "tcp")
    if problem is None:
        return None
    shown = target.removeprefix("tcp://") if kind == "tcp" else target
    return f"{mask_patterns(shown)!r}: {problem}. Fix: write e.g. {_EXAMPLES[kind]}."


def url_problem(url: str, schemes: tuple[str, ...], *, need_port: bool = False) -> str | None:
    """Why ``url`` is not a usable URL of one of ``schemes``, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a bad IPv6 address, a port out of range or not a number
        return f"not a valid URL ({exc})"
    if parts.scheme not in schemes:
        return f"unknown scheme {parts.scheme!r} (not {', '.join(s + '://' for s in schemes)})"
    if parts.scheme in ("http", "https", "tcp") and not parts.hostname:
        return "it names no host"
    if port == 0:
        return "its port is 0, which nothing listens on (1-65535)"
    if need_port and not port:
        return "it names no port (1-65535)"
    return None


def derive_probe(svc: ServiceSpec) -> ProbeSpec:
    kind = svc.image_kind
    if kind == "postgres":
        pg = postgres_env(svc)
        port = svc.host_port(5432) or svc.host_port() or 5432
        host = svc.host_address(5432 if svc.host_port(5432) else None)
        auth = quote(pg.user, safe="") + (":" + quote(pg.password, safe="") if pg.password else "")
        return ProbeSpec(
            "postgres", f"postgresql://{auth}@{host}:{port}/{quote(pg.database, safe='')}"
        )
    if kind == "redis":
        password = redis_password(svc)
        port = svc.host_port(6379) or svc.host_port() or 6379
        host = svc.host_address(6379 if svc.host_port(6379) else None)
        auth = f":{quote(password, safe='')}@" if password else ""
        return ProbeSpec("redis", f"redis://{auth}{host}:{port}/0")
    check = svc.healthcheck
    if check is None or check.test is None:
        return ProbeSpec("started", "")
    match = _URL_IN_TEST.search(" ".join(check.test))
    url = _published_url(svc, match.group(1)) if match else None
    if url is not None:
        return ProbeSpec("http", url)
    return ProbeSpec("command", "", argv=check.test)


def redis_password(svc: ServiceSpec) -> str:
    argv = list(svc.command)
    if "--requirepass" in argv[:-1]:
        return argv[argv.index("--requirepass") + 1]
    return file_env(svc, "REDIS_PASSWORD", "")


def _published_url(svc: ServiceSpec, url: str) -> str | None:
    """Rewrite a URL seen from inside the container to one reachable from the host
    (None when it is no valid URL: then the healthcheck runs as the command it is)."""
    if url_problem(url, _SCHEMES["http"]) is not None:
        return None
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host_port = svc.host_port(port) or port
    host = svc.host_address(port) if svc.host_port(port) else "127.0.0.1"
    return urlunsplit(parts._replace(netloc=f"{host}:{host_port}"))
