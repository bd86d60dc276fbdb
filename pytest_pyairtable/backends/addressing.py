"""Addressing across a stack placed over the host and containers (--pyairtable-local):
both directions of "service name -> where it answers".

- A container reaches a host-run service by its name through a host entry added to the
  container (``added_hosts``): ``127.0.0.1`` where the container shares the host's network
  (``network_mode: host``), Docker's ``host-gateway`` where it has a network of its own.
- A host-run service reaches containers through their published ports: each value of its
  ``environment`` that names another service of the stack (``http://mcp-server:8001``,
  ``redis://:pw@redis:6379/0``, ``kafka:9092``, ``DB_HOST=postgres`` with ``DB_PORT``) is
  rewritten to the address and port the host reaches it at. Values of its
  ``x-pyairtable.local.env`` are the user's own for the host, and are left as written.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..model.spec import ServiceSpec
from ..support.errors import ConfigError

# The port a URL means when it names none: the scheme's own.
DEFAULT_PORTS = {
    "http": 80, "https": 443, "ws": 80, "wss": 443, "postgres": 5432, "postgresql": 5432,
    "redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671, "mysql": 3306,
    "mariadb": 3306, "mongodb": 27017, "nats": 4222, "memcached": 11211, "mqtt": 1883,
}  # fmt: skip
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<user>[^@/\s?#]*@)?"
    r"(?P<host>[A-Za-z0-9_.-]+)(?::(?P<port>\d{1,5}))?"
)
_PAIR = re.compile(r"(?<![\w./@:-])(?P<host>[A-Za-z0-9_.-]+):(?P<port>\d{1,5})(?![\w])")
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Reach:
    """Where a process on the host reaches a service: its address, and the host port of
    each of its ports (the same port where it shares the host's network)."""

    address: str
    ports: Mapping[int, int]
    same_ports: bool  # on the host's network (or on the host): every port as it is

    def port(self, port: int) -> int | None:
        return port if self.same_ports else self.ports.get(port)


def reach_of(svc: ServiceSpec, *, on_host: bool) -> Reach:
    if on_host or svc.compose.get("network_mode") == "host":
        return Reach(LOOPBACK, {}, same_ports=True)
    published = [m for m in svc.ports if m.protocol == "tcp" and m.host]
    ip = next((m.host_ip for m in published if m.host_ip), "")
    address = LOOPBACK if ip in ("", "0.0.0.0", "::") else ip  # noqa: S104 - read, not bound
    if ":" in address:
        address = f"[{address.strip('[]')}]"
    return Reach(address, {m.container: int(m.host or 0) for m in published}, same_ports=False)


def names_of(svc: ServiceSpec) -> set[str]:
    """The names a service answers to: its own, its container's, its hostname."""
    names = {svc.name}
    for key in ("container_name", "hostname"):
        if isinstance(svc.compose.get(key), str):
            names.add(svc.compose[key])
    return names


def references(value: str, names: Iterable[str]) -> set[str]:
    """The names among ``names`` that ``value`` uses as a host."""
    wanted = set(names)
    found = {m["host"] for m in _URL.finditer(value)} | {m["host"] for m in _PAIR.finditer(value)}
    if value.strip() in wanted:
        found.add(value.strip())
    return found & wanted


@dataclass
class Rewrite:
    """A host-run service's environment, rewritten; ``lines`` say what changed (hosts
    and ports only: a value may hold a password)."""

    environment: dict[str, str]
    lines: list[str]


# (variable, name, port or None, how the value wrote it) -> (address, host port or None)
Target = Callable[[str, str, "int | None", str], "tuple[str, int | None]"]


def rewrite_environment(svc: ServiceSpec, reach: Mapping[str, tuple[str, Reach]]) -> Rewrite:
    """``svc``'s environment with each reference to a name in ``reach`` (name -> (the
    service it names, where the host reaches it)) turned into that address. Raises
    ConfigError for a port the service does not publish to the host."""
    env = dict(svc.environment)
    lines: list[str] = []

    def target(var: str, name: str, port: int | None, shown: str) -> tuple[str, int | None]:
        service, where = reach[name]
        if port is None:
            return where.address, None
        mapped = where.port(port)
        if mapped is None:
            raise ConfigError(
                f"service '{svc.name}' runs on the host and reaches '{service}' at "
                f"{shown} ({var}), but '{service}' publishes no port {port} to the host. "
                f"Fix: publish it in '{service}' (ports: [\"{port}:{port}\"]), or run "
                f"'{service}' on the host too (--pyairtable-local {service})."
            )
        return where.address, mapped

    for var, value in svc.environment.items():
        new = _rewrite_pairs(var, _rewrite_urls(var, value, reach, target), reach, target)
        if value.strip() in reach:  # a bare host name: DB_HOST=postgres, DB_PORT beside it
            new = target(var, value.strip(), None, value.strip())[0]
            port_var = _port_variable(var, env)
            if port_var is not None and env[port_var].strip().isdigit():
                container = int(env[port_var])
                _, mapped = target(port_var, value.strip(), container, f"port {container}")
                if mapped is not None and mapped != container:
                    env[port_var] = str(mapped)
                    lines.append(f"{port_var}: {container} -> {mapped}")
        if new != value:
            env[var] = new
            lines.append(f"{var}: {_hosts(value)} -> {_hosts(new)}")
    return Rewrite(env, lines)


def _rewrite_urls(
    var: str, value: str, reach: Mapping[str, tuple[str, Reach]], target: Target
) -> str:
    def one(m: re.Match[str]) -> str:
        host = m["host"]
        if host not in reach:
            return m.group(0)
        given = int(m["port"]) if m["port"] else None
        port = given if given is not None else DEFAULT_PORTS.get(m["scheme"].lower())
        address, mapped = target(var, host, port, f"{host}:{port}" if port else host)
        implied = given is None and mapped == port  # the scheme's own port still holds
        netloc = address if mapped is None or implied else f"{address}:{mapped}"
        return f"{m['scheme']}://{m['user'] or ''}{netloc}"

    return _URL.sub(one, value)


def _rewrite_pairs(
    var: str, value: str, reach: Mapping[str, tuple[str, Reach]], target: Target
) -> str:
    def one(m: re.Match[str]) -> str:
        if m["host"] not in reach:
            return m.group(0)
        address, mapped = target(var, m["host"], int(m["port"]), m.group(0))
        return f"{address}:{mapped}"

    return _PAIR.sub(one, value)


def _port_variable(var: str, env: Mapping[str, str]) -> str | None:
    """``DB_PORT`` beside ``DB_HOST`` (``DBHOST``/``DBPORT``, and in lower case, too)."""
    for host, port in (("HOST", "PORT"), ("host", "port")):
        if var.endswith(host) and var[: -len(host)] + port in env:
            return var[: -len(host)] + port
    return None


def _hosts(value: str) -> str:
    """The hosts and ports a value names, for the listing: never the whole value, which
    may hold a password (a bare name or address is shown as it is)."""
    found = [f"{m['host']}:{m['port']}" if m["port"] else m["host"] for m in _URL.finditer(value)]
    found += [m.group(0) for m in _PAIR.finditer(value)]
    return ", ".join(dict.fromkeys(found)) or value.strip()


def added_hosts(svc: ServiceSpec, host_run: Mapping[str, ServiceSpec]) -> tuple[str, ...]:
    """The host entries a container needs to reach the host-run services it depends on
    or names in its environment."""
    wanted = {d.name for d in svc.depends_on if d.name in host_run}
    for value in svc.environment.values():
        wanted |= references(value, host_run)
    address = LOOPBACK if svc.compose.get("network_mode") == "host" else "host-gateway"
    return tuple(f"{name}:{address}" for name in sorted(wanted))


def with_added_hosts(svc: ServiceSpec, host_run: Mapping[str, ServiceSpec]) -> ServiceSpec:
    hosts = added_hosts(svc, host_run)
    return dataclasses.replace(svc, added_hosts=hosts) if hosts else svc
