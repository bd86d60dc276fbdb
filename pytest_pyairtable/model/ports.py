"""``ports:`` in every form compose accepts, read as compose reads them.

Short syntax ``[HOST_IP:][HOST[-HOST]:]CONTAINER[-CONTAINER][/PROTOCOL]`` (docker's
``nat.ParsePortSpec``): ``8000``, ``8000:80``, ``:8000:80``, ``127.0.0.1::80``,
``[::1]:8080:80``, ``8000-8010:80`` (one of a host range), ``7000-7001:8000-8001``,
``53:53/udp``. A range yields one entry per port, ordered as compose orders them (by
``"port/proto"`` as text). Long syntax (``target``, ``published``, ``host_ip``,
``protocol``, ``mode``, ``name``, ``app_protocol``) is kept, with compose's defaults.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..support.errors import ConfigError

_FIX = "Fix: write [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL] with ports 0-65535."


class PortError(ValueError):
    pass


def canonical_ports(entries: Any, where: str) -> list[Any]:
    """Short forms expanded to compose's long form; mappings kept as they are."""
    if not isinstance(entries, list):
        raise ConfigError(f"{where}: expected a list of ports, got {entries!r}. {_FIX}")
    result: list[Any] = []
    for n, entry in enumerate(entries):
        if isinstance(entry, dict):
            result.append(entry)
        elif isinstance(entry, str) or (isinstance(entry, int) and not isinstance(entry, bool)):
            try:
                result.extend(parse_short(str(entry)))
            except PortError as exc:
                raise ConfigError(
                    f"{where}[{n}]: cannot read port {entry!r}: {exc}. {_FIX}"
                ) from None
        else:
            raise ConfigError(f"{where}[{n}]: a port cannot be {entry!r}. {_FIX}")
    return result


def with_defaults(entry: dict[str, Any]) -> dict[str, Any]:
    if "protocol" in entry and "mode" in entry:
        return entry
    return {"protocol": "tcp", "mode": "ingress", **entry}


def parse_short(spec: str) -> list[dict[str, Any]]:  # noqa: PLR0912 - docker nat.ParsePortSpec
    ip, host, container = _split(spec)
    container, _, proto = container.partition("/")
    proto = (proto or "tcp").lower() if container else ""
    if proto not in ("tcp", "udp", "sctp"):
        raise PortError(f"invalid protocol {proto!r} (tcp, udp or sctp)")
    if ip.startswith("["):
        if not ip.endswith("]") or "]" in ip[1:-1]:
            raise PortError(f"invalid IP address {ip}")
        ip = ip[1:-1]
    if ip and not valid_ip(ip):
        raise PortError(f"invalid IP address {ip}")
    if not container:
        raise PortError("no container port")
    try:
        start, end = _range(container)
    except PortError:
        raise PortError(f"invalid container port {container}") from None
    if start == 0:  # as compose: "missing a target port"
        raise PortError(f"container port 0 in {container!r} is no port")
    host_start = host_end = 0
    if host:
        try:
            host_start, host_end = _range(host)
        except PortError:
            raise PortError(f"invalid host port {host}") from None
        if end - start != host_end - host_start and end != start:
            raise PortError(f"container ports {container} and host ports {host} differ in number")
    bindings: dict[str, list[dict[str, Any]]] = {}
    count = end - start + 1
    for i in range(count):
        published = ""
        if host:
            published = str(host_start + i)
            if count == 1 and host_start != host_end:
                published += f"-{host_end}"
        entry: dict[str, Any] = {"mode": "ingress", "protocol": proto}
        if ip:
            entry["host_ip"] = ip
        if start + i:
            entry["target"] = start + i
        if published:
            entry["published"] = published
        bindings.setdefault(f"{start + i}/{proto}", []).append(entry)
    return [entry for key in sorted(bindings) for entry in bindings[key]]


def _split(spec: str) -> tuple[str, str, str]:
    parts = spec.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _range(text: str) -> tuple[int, int]:
    if "-" not in text:
        value = _port(text)
        return value, value
    first, second = text.split("-")[:2]
    start, end = _port(first), _port(second)
    if end < start:
        raise PortError(f"invalid range {text}")
    return start, end


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5 or int(text) > 65535:
        raise PortError(text)
    return int(text)


def valid_ip(text: str) -> bool:
    if "%" in text:  # Go's net.ParseIP takes no IPv6 zone
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def port_key(entry: Any, where: str) -> str:
    """compose's identity of a port entry, for keeping one of each (quirks included:
    ``published: 80`` and ``published: "80"`` are different entries, as in compose)."""
    if isinstance(entry, dict):
        if "target" not in entry:
            raise ConfigError(f"{where}: a port without a target. Fix: set target.")
        return (
            "|".join(
                _typed(entry.get(key, default))
                for key, default in (("host_ip", "0.0.0.0"), ("published", None), ("target", None))  # noqa: S104 - compose's key, no bind
            )
            + f"/{_typed(entry.get('protocol', 'tcp'))}"
        )
    return entry if isinstance(entry, str) else str(entry)  # 80 and "80" are one port


def _typed(value: Any) -> str:
    return value if isinstance(value, str) else f"{type(value).__name__}:{value!r}"
