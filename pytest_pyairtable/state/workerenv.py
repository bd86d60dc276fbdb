"""What an xdist worker's own databases are called, and every name a suite reads them
by, rewritten for it: its handles' URLs and the environment variables that point at the
stack's databases.

Decided in the controller before the workers start (their environment is fixed then):

- PostgreSQL: database ``<db>`` of a service becomes ``<db>_<worker>`` (``app_gw0``).
  The databases copied are those the stack names: the probe's, the server's own
  ``POSTGRES_DB``, and each one a client's URL names.
- Redis: each logical database the stack names gets, per worker, an unused one counted
  down from the last (15, 14, ... of the default 16; ``--databases N`` in the service's
  command is read). Too few of them, or one only: the workers share it (the summary
  says so, and the worker's handle gives a ``key_prefix`` to keep their keys apart).

A variable is rewritten when its value is a PostgreSQL URL (``postgresql://``,
``postgresql+driver://``, ``jdbc:postgresql://``) or a keyword DSN (``host=... dbname=...``)
reaching a copied database, a Redis URL reaching a copied logical database, or, under a
name that says it holds one (``POSTGRES_DB``, ``DB_NAME``, ``PGDATABASE`` ...), a copied
database's bare name. A URL naming the server as the stack does (``db:5432``) is given
the address the test process reaches it at (``127.0.0.1:<published port>``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from ..model.spec import ServiceSpec, StackSpec

MAX_NAME = 63  # PostgreSQL's identifier length, in bytes
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", ""})  # noqa: S104 - names, no bind
DB_NAME_VAR = re.compile(r"(^|_)(PGDATABASE|DB|DATABASE|DBNAME|DB_NAME|DATABASE_NAME)$")
_PG_SCHEME = re.compile(r"^(jdbc:)?postgres(ql)?(\+[\w.-]+)?$")
_REDIS_SCHEMES = ("redis", "rediss")


def copy_name(database: str, slot: str) -> str:
    """``<db>_<slot>``, shortened with a hash of ``database`` past 63 bytes."""
    name = f"{database}_{slot}"
    if len(name.encode()) <= MAX_NAME:
        return name
    tail = f"_{hashlib.sha256(database.encode()).hexdigest()[:8]}_{slot}"
    head = database.encode()[: MAX_NAME - len(tail.encode())].decode(errors="ignore")
    return head + tail


@dataclass
class Server:
    """A PostgreSQL or Redis service, as its clients name it."""

    service: str
    kind: str  # "postgres" or "redis"
    names: frozenset[str]  # the host names it has inside the stack (its service name)
    container_port: int
    host: str  # where the test process reaches it (its probe's address)
    port: int
    databases: set[str] = field(default_factory=set)  # copied: names, or Redis numbers
    total: int = 16  # Redis: how many logical databases the server has
    numbers: dict[tuple[str, str], int] = field(default_factory=dict)  # (slot, db) -> db

    def reaches(self, host: str, port: int | None) -> str | None:
        """'stack' (by its name in the stack), 'host' (by the test's address), or None."""
        host = host.strip("[]").lower()
        if host in self.names and port in (None, self.container_port):
            return "stack"
        default = 5432 if self.kind == "postgres" else 6379
        if (host in LOOPBACK or host == self.host) and (port or default) == self.port:
            return "host"
        return None

    def copy_of(self, database: str, slot: str) -> str | None:
        if database not in self.databases:
            return None
        if self.kind == "postgres":
            return copy_name(database, slot)
        number = self.numbers.get((slot, database))
        return None if number is None else str(number)


@dataclass
class Plan:
    slots: tuple[str, ...]
    servers: dict[str, Server]
    shared: list[str] = field(default_factory=list)  # Redis services the workers share

    def rewrite(self, name: str, value: str, slot: str) -> str | None:
        """``value`` as worker ``slot`` must see it, or None when it names no copy."""
        if "://" in value:
            return self._url(value, slot)
        if "dbname=" in value and "=" in value.split(maxsplit=1)[0]:
            return self._keywords(value, slot)
        if DB_NAME_VAR.search(name.upper()):
            for server in self.servers.values():
                if server.kind == "postgres" and value in server.databases:
                    return copy_name(value, slot)
        return None

    def url_for(self, service: str, url: str, slot: str) -> str:
        """A handle's URL (the probe's) for worker ``slot``."""
        return self.rewrite("", url, slot) or url

    def _url(self, value: str, slot: str) -> str | None:
        jdbc = value.startswith("jdbc:")
        parts = urlsplit(value.removeprefix("jdbc:"))
        scheme = parts.scheme.lower()
        try:
            port = parts.port
        except ValueError:
            return None  # several hosts, or no number: not one we can tell
        kind = _kind(scheme)
        for server in self.servers.values():
            how = server.kind == kind and server.reaches(parts.hostname or "", port)
            if not how:
                continue
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            path, rest = parts.path, parts.query
            if kind == "postgres":
                copy = server.copy_of(unquote(parts.path.lstrip("/")), slot)
                path = f"/{copy}" if copy else path
            else:
                shared = query.pop("db", None) or parts.path.lstrip("/") or "0"
                copy = server.copy_of(shared, slot)
                path, rest = (f"/{copy}", urlencode(query)) if copy else (path, rest)
            if copy is None:
                return None
            netloc = parts.netloc
            if how == "stack":
                users = netloc.rpartition("@")[0]
                hostport = f"[{server.host}]" if ":" in server.host else server.host
                netloc = f"{users}@" * bool(users) + f"{hostport}:{server.port}"
            rebuilt = urlunsplit((parts.scheme, netloc, path, rest, parts.fragment))
            return "jdbc:" * jdbc + rebuilt
        return None

    def _keywords(self, value: str, slot: str) -> str | None:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        try:
            params = conninfo_to_dict(value)
        except Exception:
            return None
        port = str(params.get("port") or "")
        for server in self.servers.values():
            how = server.kind == "postgres" and server.reaches(
                str(params.get("host") or ""), int(port) if port.isdigit() else None
            )
            copy = server.copy_of(str(params.get("dbname") or ""), slot) if how else None
            if copy is not None:
                moved = {"host": server.host, "port": str(server.port)} if how == "stack" else {}
                return make_conninfo(value, dbname=copy, **moved)
        return None

    def environ(self, slot: str, environ: Mapping[str, str], stack: StackSpec) -> dict[str, str]:
        """The variables worker ``slot`` gets: this process's own that name a copied
        database, then those the stack's services and variables give (a name this
        process has keeps its own value when it names no copy)."""
        out: dict[str, str] = {}
        for name, value in environ.items():
            if (new := self.rewrite(name, value, slot)) is not None and new != value:
                out[name] = new
        sources: list[Mapping[str, str]] = []
        for svc in stack.services.values():
            sources += [svc.environment, svc.local.env]
        for source in [*sources, stack.variables]:
            for name, value in source.items():
                if name in environ or name in out or not isinstance(value, str):
                    continue
                if (new := self.rewrite(name, value, slot)) is not None:
                    out[name] = new
        return out


def plan(stack: StackSpec, slots: Iterable[str], environ: Mapping[str, str]) -> Plan:
    """The copies every worker gets, from the stack's PostgreSQL and Redis services."""
    servers = {name: server for name, svc in stack.services.items() if (server := _server(svc))}
    result = Plan(tuple(slots), servers)
    texts: list[Mapping[str, str]] = [environ, stack.variables]
    for svc in stack.services.values():
        texts += [svc.environment, svc.local.env]
    for source in texts:
        for value in source.values():
            _note_reference(result, str(value))
    for server in servers.values():
        if server.kind == "redis":
            _number(result, server)
    return result


def _server(svc: ServiceSpec) -> Server | None:
    kind = svc.probe.kind
    if kind not in ("postgres", "redis") or not svc.probe.target:
        return None
    default = 5432 if kind == "postgres" else 6379
    host, port, database = _address(svc.probe.target, kind)
    inside = next((m.container for m in svc.ports if m.host == port), default)
    server = Server(
        svc.name,
        kind,
        frozenset({svc.name.lower()}),  # the name the stack's network knows it by
        int(inside or default),
        host or "127.0.0.1",
        port or default,
    )
    if database:
        server.databases.add(database)
    if kind == "postgres":
        env = svc.environment
        server.databases.add(env.get("POSTGRES_DB") or env.get("POSTGRES_USER") or "postgres")
    else:
        server.total = _redis_databases(svc.command)
    return server


def _address(target: str, kind: str) -> tuple[str, int | None, str]:
    if kind == "postgres" and "://" not in target:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(target)
        given = str(params.get("port") or "")
        return (
            str(params.get("host") or ""),
            int(given) if given.isdigit() else None,
            str(params.get("dbname") or ""),
        )
    parts = urlsplit(target)
    database = unquote(parts.path.lstrip("/"))
    if kind == "redis":
        database = dict(parse_qsl(parts.query)).get("db") or database or "0"
    try:
        number = parts.port
    except ValueError:
        number = None
    return parts.hostname or "", number, database


def _note_reference(plan_: Plan, value: str) -> None:
    """A database a client's URL names joins the copied ones of the server it reaches."""
    if "://" not in value:
        return
    parts = urlsplit(value.removeprefix("jdbc:"))
    scheme = parts.scheme.lower()
    kind = _kind(scheme)
    if not kind:
        return
    try:
        port = parts.port
    except ValueError:
        return
    for server in plan_.servers.values():
        if server.kind == kind and server.reaches(parts.hostname or "", port):
            db = unquote(parts.path.lstrip("/"))
            if kind == "redis":
                db = dict(parse_qsl(parts.query)).get("db") or db or "0"
            if db and (kind == "postgres" or db.isdigit()):
                server.databases.add(db)


def _kind(scheme: str) -> str:
    return "postgres" if _PG_SCHEME.match(scheme) else "redis" if scheme in _REDIS_SCHEMES else ""


def _redis_databases(command: Iterable[str]) -> int:
    words = list(command)
    for n, word in enumerate(words):
        value = None
        if word == "--databases" and n + 1 < len(words):
            value = words[n + 1]
        elif word.startswith("--databases="):
            value = word.partition("=")[2]
        if value is not None and value.isdigit():
            return int(value)
    return 16


def _number(plan_: Plan, server: Server) -> None:
    """Redis: a free logical database for each (worker, database the stack names)."""
    used = sorted(server.databases, key=int)
    free = [n for n in range(server.total - 1, -1, -1) if str(n) not in server.databases]
    if len(plan_.slots) * len(used) > len(free):
        plan_.shared.append(server.service)
        server.databases = set()  # nothing copied: the workers share it
        return
    numbers = iter(free)
    for slot in plan_.slots:
        for db in used:
            server.numbers[(slot, db)] = next(numbers)
