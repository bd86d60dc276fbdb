"""An xdist worker's own PostgreSQL databases: copies of the snapshot taken after the
stack's jobs ran, made with ``CREATE DATABASE <db>_<worker> TEMPLATE <snapshot>`` (the
snapshot has no sessions, ever, so a copy never waits for or ends one), looking like
the original (owner, grants, settings: pgdb.py).

A copy's comment marks it ours: the run, its owner process (PID, start time, host) and
what it copies. Only a copy this run made, or one whose run's process is gone from this
host, is ever dropped; a database of that name that is not provably ours stops the copy
with an error naming it.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from typing import Any

from ..backends.procfs import is_running, proc_start_time
from ..support.errors import ResetError
from .pgdb import Database, execute
from .pgsnap import COPY_MARK, PostgresSnapshot

_COMMENTS = """
SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database
WHERE datname::text = ANY(%s)
"""

_MARKED = """
SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database
WHERE shobj_description(oid, 'pg_database') LIKE %s
"""


def mark(run_id: str, slot: str, database: str) -> dict[str, Any]:
    pid = os.getpid()
    return {
        "mark": COPY_MARK,
        "run": run_id,
        "pid": pid,
        "ticks": proc_start_time(pid),
        "host": socket.gethostname(),
        "slot": slot,
        "of": database,
    }


def _meta(comment: str | None) -> dict[str, Any] | None:
    try:
        meta = json.loads(comment or "")
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and meta.get("mark") == COPY_MARK else None


def _stale(meta: dict[str, Any]) -> bool:
    """A copy whose run's owner process is gone (from this host: elsewhere, we cannot tell)."""
    pid, ticks = meta.get("pid"), meta.get("ticks")
    return (
        meta.get("host") == socket.gethostname()
        and isinstance(pid, int)
        and not is_running(pid, ticks if isinstance(ticks, int) else None)
    )


def make(snapshot: PostgresSnapshot, db: Database, name: str, marked: dict[str, Any]) -> None:
    """``name``, a fresh copy of ``db``'s snapshot for a worker; a copy of that name this
    run made before (for a worker that went away) or a stale run left is replaced."""
    import psycopg

    try:
        _make(snapshot, db, name, marked)
    except psycopg.Error as exc:
        raise ResetError(
            f"service '{snapshot.service}': cannot make database '{name}' for xdist worker "
            f"{marked['slot']}: {exc}. Fix: give the user of its probe's DSN CREATEDB "
            "(the image's POSTGRES_USER has it), or run with --pyairtable-shared-db."
        ) from None


def _make(snapshot: PostgresSnapshot, db: Database, name: str, marked: dict[str, Any]) -> None:
    import psycopg

    with snapshot.lock, snapshot.session() as conn:
        snapshot.forget(name)
        try:
            db.make_copy(conn, name, db.our("snap"), json.dumps(marked), allow=True)
            return
        except psycopg.errors.DuplicateDatabase:
            pass  # one of that name: replaced only when provably ours and done with
        meta = _meta(dict(conn.execute(_COMMENTS, [[name]]).fetchall()).get(name))
        if meta is None or (meta.get("run") != marked["run"] and not _stale(meta)):
            whose = "another live run's copy" if meta else "not made by this tool"
            raise ResetError(
                f"service '{snapshot.service}': cannot make database '{name}' for xdist "
                f"worker {marked['slot']}: a database of that name exists ({whose}). "
                "Fix: run with --pyairtable-shared-db, or drop or rename it (if it is "
                "another run's, wait for that run to end)."
            )
        execute(conn, "DROP DATABASE {} WITH (FORCE)", name)
        db.make_copy(conn, name, db.our("snap"), json.dumps(marked), allow=True)


def remake(snapshot: PostgresSnapshot, db: Database, name: str) -> None:
    """``name`` (a copy this run made, with no session on it) copied anew."""
    with snapshot.lock, snapshot.session() as conn:
        comment = dict(conn.execute(_COMMENTS, [[name]]).fetchall()).get(name)
        meta = _meta(comment)
        if meta is None:
            raise ResetError(
                f"service '{snapshot.service}': database '{name}' is no longer the copy this "
                "run made (its mark is gone); it is left as it is."
            )
        make(snapshot, db, name, meta)


def drop(snapshot: PostgresSnapshot, names: Iterable[str], run_id: str) -> list[str]:
    """Drop the copies among ``names`` that carry this run's mark (their workers are
    gone, or the run is ending: WITH (FORCE) ends what is left of their sessions)."""
    dropped = []
    with snapshot.lock, snapshot.session() as conn:
        names = list(names)
        for name, comment in conn.execute(_COMMENTS, [names]).fetchall():
            meta = _meta(comment)
            if meta is not None and meta.get("run") == run_id:
                snapshot.forget(name)
                execute(conn, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)
                dropped.append(name)
    return dropped


def sweep(snapshot: PostgresSnapshot) -> list[str]:
    """Drop the copies whose run's process is gone from this host (a killed run's, in
    a kept stack or a volume that outlived it)."""
    swept = []
    with snapshot.lock, snapshot.session() as conn:
        pattern = f'%"mark": "{COPY_MARK}"%'
        for name, comment in conn.execute(_MARKED, [pattern]).fetchall():
            meta = _meta(comment)
            if meta is not None and _stale(meta):
                execute(conn, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)
                swept.append(name)
    return swept
