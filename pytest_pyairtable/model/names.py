"""Service names as this package uses them: fixture names, and the names it refuses.

A service ``api-gateway`` is the fixture ``pyairtable_api_gateway`` (``-`` and ``.``
become ``_``). The plugin's own fixtures are never shadowed: a service named like one
of them (``stack``, ``faults``, ``reset``) is the fixture ``pyairtable_service_<name>``
instead. Two services that would make one fixture (``a-b`` and ``a_b``) are refused,
and so are the names ``.`` and ``..`` (compose accepts them; here a service's name is
a file name: its log, its data directory) and names too long for one.
"""

from __future__ import annotations

from collections.abc import Iterable

PREFIX = "pyairtable_"
RESERVED = ("stack", "faults", "reset")  # pyairtable_<these> are the plugin's own fixtures
MAX_LENGTH = 128  # a service name is a file name (<name>.log): well below NAME_MAX


def fixture_name(service: str) -> str:
    base = service.replace("-", "_").replace(".", "_")
    return PREFIX + ("service_" + base if base in RESERVED else base)


def name_problems(services: Iterable[str]) -> list[str]:
    """Why these service names cannot all be used: path names, length, collisions."""
    problems = []
    owners: dict[str, str] = {}
    for name in services:
        if name in (".", ".."):
            problems.append(
                f"service name {name!r} is a path, not a name (its log and data directory "
                "are named after it). Fix: rename the service."
            )
            continue
        if len(name) > MAX_LENGTH:
            problems.append(
                f"service name {name[:40]!r}... is {len(name)} characters long. Fix: use at "
                f"most {MAX_LENGTH} (its log file is named after it)."
            )
            continue
        fixture = fixture_name(name)
        other = owners.setdefault(fixture, name)
        if other != name:
            problems.append(
                f"services {other!r} and {name!r} would both be the fixture {fixture!r} "
                "('-' and '.' become '_'). Fix: rename one of them."
            )
    return problems
