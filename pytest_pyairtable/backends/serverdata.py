"""A built-in recipe's server data, saved while it runs and put in place before a start:
what a job's snapshot is made of on the local backend (state/jobsnap.py).

PostgreSQL: the whole data directory, copied as PostgreSQL documents a base backup made
with its low-level API (``pg_backup_start`` .. ``pg_backup_stop``, one session): the
files are copied while the server runs, then ``backup_label`` and the WAL written
meanwhile make the copy consistent when a server starts from it (it replays that WAL,
in milliseconds). Starting from the copy costs what starting from the cached fresh
cluster costs (pgcache.py): one directory copy. A template database inside the server
(``CREATE DATABASE ... TEMPLATE``, state/pgsnap.py) cannot outlive a cold boot, whose
cluster is new; benchmarks/jobsnap.py measures both.

Redis: its RDB file, written by ``SAVE`` and read by the server at its start.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
from pathlib import Path

from ..model.imageenv import postgres_env
from ..model.probespec import redis_password
from ..model.spec import ServiceSpec
from ..support.errors import PrerequisiteError
from ..support.files import open_private, open_read, write_atomic
from . import pgcache
from .base import Running
from .recipes import DURABLE, _option, find_binary, server_version, unprivileged_user

FORMAT = "1"  # of what is saved: a snapshot of another format is never used
# Left out of a base backup (PostgreSQL's documentation, "Making a Base Backup Using the
# Low Level API"): recreated at start, or the running server's own.
_SKIP_FILES = frozenset({"postmaster.pid", "postmaster.opts", "backup_label.old",
                         "tablespace_map.old", "pg_internal.init"})  # fmt: skip
_EMPTY_DIRS = frozenset({"pg_wal", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots",
                         "pg_stat_tmp", "pg_subtrans", "pg_replslot"})  # fmt: skip
_LABEL = "pytest-pyairtable job snapshot"
_BACKUP = {  # PostgreSQL 15 renamed the functions (and dropped exclusive backups)
    True: (
        "SELECT pg_walfile_name(pg_backup_start(%s, true))",
        "SELECT lsn, labelfile, spcmapfile FROM pg_backup_stop(true)",
    ),
    False: (
        "SELECT pg_walfile_name(pg_start_backup(%s, true, false))",
        "SELECT lsn, labelfile, spcmapfile FROM pg_stop_backup(false, true)",
    ),
}


class PostgresData:
    """A built-in PostgreSQL's data directory (``<workdir>/data``)."""

    def __init__(self, svc: ServiceSpec, workdir: Path) -> None:
        binary = find_binary("postgres", svc.name, hint="apt-get install postgresql")
        self.service = svc.name
        self.workdir = workdir
        self.identity = "\0".join(
            ["postgres", FORMAT, server_version(binary), os.path.realpath(binary), *DURABLE]
        )
        self._pg = postgres_env(svc)
        self._port = svc.host_port(5432) or svc.host_port() or 5432

    def seed(self, source: Path) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        run_as = unprivileged_user()
        owner = None
        if run_as:
            info = pwd.getpwnam(run_as)
            owner = (info.pw_uid, info.pw_gid)
            os.chown(self.workdir, *owner)
        if not pgcache.copy_cluster(source / "data", self.workdir / "data", owner):
            raise PrerequisiteError(
                f"service '{self.service}': its data could not be copied from the snapshot "
                f"in {source}"
            )

    def save(self, running: Running, dest: Path) -> None:
        import psycopg

        data = self.workdir / "data"
        conninfo = psycopg.conninfo.make_conninfo(
            host=str(self.workdir), port=self._port, user=self._pg.user,
            password=self._pg.password, dbname=self._pg.database,
            application_name="pytest-pyairtable snapshot",
        )  # fmt: skip
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            modern = conn.info.server_version >= 150000
            start, stop = _BACKUP[modern]
            row = conn.execute(start, [_LABEL]).fetchone()
            first = str(row[0]) if row else ""
            _copy_tree(data, dest / "data")  # an error ends the session: the backup ends too
            row = conn.execute(stop).fetchone()
            assert row is not None
            lsn, label, spcmap = row
            row = conn.execute("SELECT pg_walfile_name(%s)", [lsn]).fetchone()
            last = str(row[0]) if row else ""
        write_atomic(dest / "data" / "backup_label", label)
        if spcmap:
            write_atomic(dest / "data" / "tablespace_map", spcmap)
        wal = data / "pg_wal"
        for name in sorted(os.listdir(wal)):  # the WAL written during the copy, in order
            wanted = first <= name <= last if len(name) == 24 else name.endswith(".history")
            if wanted:
                shutil.copyfile(wal / name, dest / "data" / "pg_wal" / name)


class RedisData:
    """A built-in Redis's RDB file (``<workdir>/dump.rdb``, read at its start)."""

    def __init__(self, svc: ServiceSpec, workdir: Path) -> None:
        binary = find_binary("redis-server", svc.name, hint="apt-get install redis-server")
        self.service = svc.name
        self.workdir = workdir
        version = _redis_version(binary)
        self.identity = "\0".join(["redis", FORMAT, version, os.path.realpath(binary)])
        self._password = redis_password(svc)
        self._port = svc.host_port(6379) or svc.host_port() or 6379
        self._host = svc.host_address(6379 if svc.host_port(6379) else None).strip("[]")

    def seed(self, source: Path) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)
        _copy_file(source / "dump.rdb", self.workdir / "dump.rdb")

    def save(self, running: Running, dest: Path) -> None:
        import redis

        client = redis.Redis(host=self._host, port=self._port, password=self._password or None)
        try:
            client.save()  # synchronous: the file is whole when it answers
        finally:
            client.close()
        _copy_file(self.workdir / "dump.rdb", dest / "dump.rdb")


def _copy_tree(source: Path, dest: Path) -> None:
    """A running server's data directory: what vanishes while it is copied (a dropped
    table, a temporary file) is left out, as pg_basebackup does; the WAL replay at the
    start puts every page right. A tablespace elsewhere cannot be part of a snapshot."""
    if any(os.scandir(source / "pg_tblspc")):
        raise PrerequisiteError("it has tablespaces outside its data directory")
    for folder, dirs, files in os.walk(source):
        rel = Path(folder).relative_to(source)
        (dest / rel).mkdir(mode=0o700, parents=True, exist_ok=True)
        if rel == Path("."):
            for name in _EMPTY_DIRS.intersection(dirs):
                (dest / name).mkdir(mode=0o700)  # there, and empty
            dirs[:] = [d for d in dirs if d not in _EMPTY_DIRS]
        dirs[:] = [d for d in dirs if not d.startswith("pgsql_tmp")]
        for name in files:
            if name in _SKIP_FILES or name.startswith("pgsql_tmp"):
                continue
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(Path(folder, name), dest / rel / name, follow_symlinks=False)
                os.chmod(dest / rel / name, 0o600, follow_symlinks=False)


def _copy_file(source: Path, dest: Path) -> None:
    """One file of ours to another, owner-only, through no symlink at either end."""
    with open_read(source) as src, open_private(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)


@functools.lru_cache(maxsize=4)
def _redis_version(binary: str) -> str:
    import subprocess

    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.split(" sha=")[0].strip()


def server_data(svc: ServiceSpec, workdir: Path) -> PostgresData | RedisData | None:
    """How the local backend saves and seeds ``svc``'s data: a built-in recipe's server
    only (a service's own command keeps its data where it wants), and a Redis only
    without an append-only file (which it would read at its start instead)."""
    if svc.local.command:
        return None
    if svc.image_kind == "postgres":
        return PostgresData(svc, workdir)
    if svc.image_kind == "redis" and _option(svc.command, "--appendonly", "no") == "no":
        return RedisData(svc, workdir)
    return None
