"""The settings a postgres or redis image reads from its environment, read as its own
entrypoint reads them, for our recipes (backends/recipes.py) and the derived probes.

The official postgres image (docker-entrypoint.sh, ``file_env``): ``POSTGRES_PASSWORD``,
``POSTGRES_USER`` (default ``postgres``), ``POSTGRES_DB`` (default: the user) and
``POSTGRES_INITDB_ARGS`` may each come from a file named by the same variable with
``_FILE`` (Docker secrets); setting both is an error; an empty variable counts as unset;
the file's trailing line breaks are dropped (``$(< file)``). The official redis image
reads no variable; ``REDIS_PASSWORD`` and ``REDIS_PASSWORD_FILE`` are the bitnami image's.

A ``_FILE`` path names a file inside the container: it is found through the service's
bind mounts, else taken as a path on this machine (a local run's own secret file).
What the image (or PostgreSQL under it) refuses at start, ``check_postgres_env`` refuses
before a recipe runs anything: a wait that can only time out is no answer.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..support.errors import ConfigError

if TYPE_CHECKING:
    from .spec import ServiceSpec

SECRET_FILE_CAP = 64 * 1024  # a secret file larger than this is no password


@dataclass(frozen=True)
class PostgresEnv:
    user: str
    password: str
    database: str
    initdb_args: str  # shell words, as the image evaluates them
    host_auth: str  # POSTGRES_HOST_AUTH_METHOD; "" for the image's default


def postgres_env(svc: ServiceSpec) -> PostgresEnv:
    env = svc.environment
    user = file_env(svc, "POSTGRES_USER", "postgres")
    return PostgresEnv(
        user=user,
        password=file_env(svc, "POSTGRES_PASSWORD", ""),
        database=file_env(svc, "POSTGRES_DB", user),
        initdb_args=file_env(svc, "POSTGRES_INITDB_ARGS", ""),
        host_auth=env.get("POSTGRES_HOST_AUTH_METHOD", ""),
    )


def file_env(svc: ServiceSpec, name: str, default: str) -> str:
    """``name``'s value as the image's ``file_env`` sets it."""
    env = svc.environment
    value, path = env.get(name, ""), env.get(f"{name}_FILE", "")
    if value and path:
        raise ConfigError(
            f"service '{svc.name}': both {name} and {name}_FILE are set, and the image "
            f"refuses to start with both. Fix: keep one of them."
        )
    if value:
        return value
    if path:
        return read_secret_file(svc, f"{name}_FILE", path)
    return default


def host_path(svc: ServiceSpec, path: str) -> str:
    """Where a path inside the service's container is on this machine: through the
    bind mount with the longest matching target, else the path itself."""
    path = posixpath.normpath(path)
    best = None
    for mount in svc.volumes:
        target = posixpath.normpath(mount.target)
        inside = path == target or path.startswith(target.rstrip("/") + "/")
        if mount.type == "bind" and inside and (best is None or len(target) > len(best[0])):
            best = (target, mount.source)
    if best is None:
        return path
    rest = path[len(best[0]) :].lstrip("/")
    return posixpath.join(best[1], rest) if rest else best[1]


def read_secret_file(svc: ServiceSpec, variable: str, path: str) -> str:
    where = host_path(svc, path)
    shown = f"{path} ({where} on this machine)" if where != path else path
    try:
        with open(where, "rb") as f:
            data = f.read(SECRET_FILE_CAP + 1)
    except OSError as exc:
        raise ConfigError(
            f"service '{svc.name}': {variable} names {shown}, which cannot be read "
            f"({exc.strerror or exc}). Fix: create the file, or mount it into the service "
            "(volumes:) where the variable says."
        ) from None
    if len(data) > SECRET_FILE_CAP:
        raise ConfigError(
            f"service '{svc.name}': {variable} names {shown}, which holds more than "
            f"{SECRET_FILE_CAP // 1024} KiB. Fix: name the file that holds only the value."
        )
    try:  # as bash's $(< file): NUL bytes dropped, trailing line breaks removed
        return data.replace(b"\0", b"").decode().rstrip("\n")
    except UnicodeDecodeError:
        raise ConfigError(
            f"service '{svc.name}': {variable} names {shown}, which is not UTF-8 text. "
            "Fix: write the value as UTF-8."
        ) from None


def quote_identifier(name: str) -> str:
    """A name as PostgreSQL reads an identifier back unchanged: double-quoted, each
    double quote doubled (psycopg.sql.Identifier's rule, without a connection)."""
    return '"' + name.replace('"', '""') + '"'


def check_postgres_env(service: str, pg: PostgresEnv) -> None:
    """What the image refuses at start, refused before anything runs."""
    if not pg.password and pg.host_auth != "trust":
        raise ConfigError(
            f"service '{service}': POSTGRES_PASSWORD is empty or unset, and the postgres "
            "image refuses to start without it (its superuser would have no password). "
            "Fix: set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE), or "
            "POSTGRES_HOST_AUTH_METHOD=trust to allow connections without one."
        )
    for name, value in (("POSTGRES_USER", pg.user), ("POSTGRES_DB", pg.database)):
        if "\0" in value or "\n" in value or "\r" in value:
            raise ConfigError(
                f"service '{service}': {name} holds a line break, which the built-in "
                "recipe cannot pass to PostgreSQL's setup. Fix: remove the line break."
            )
    bad = sorted(set(pg.user) & set("\"$'\\"))
    if bad:
        raise ConfigError(
            f"service '{service}': POSTGRES_USER holds {' '.join(bad)}, which PostgreSQL's "
            "initdb refuses in the superuser's name (the image fails the same way). "
            "Fix: use a name without \" $ ' or \\."
        )
    if "\n" in pg.password or "\r" in pg.password:
        raise ConfigError(
            f"service '{service}': POSTGRES_PASSWORD holds a line break, and initdb reads "
            "the password as one line. Fix: remove the line break."
        )


def initdb_args(service: str, text: str) -> list[str]:
    """POSTGRES_INITDB_ARGS as words (the image evaluates it in bash)."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ConfigError(
            f"service '{service}': POSTGRES_INITDB_ARGS is not valid shell words ({exc}). "
            "Fix: close its quotes."
        ) from None
