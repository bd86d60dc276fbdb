"""A PostgreSQL service's databases, snapshotted once and swapped back in before a test.

Snapshot: each database of the server that takes connections and is no template (and
``postgres`` only when it is the service's own) is copied with ``CREATE DATABASE
<snapshot> TEMPLATE <db>``; a template must have no sessions, so the app's are ended
first, once. Restore swaps in a *spare*, a copy of the snapshot made ahead of time in a
background thread, so that a reset costs renames, not a copy (measured in
benchmarks/reset.py on a loaded 2-core machine: DROP + CREATE ... TEMPLATE by hand
~130 ms, the swap ~6 ms; back to back, waiting for the next copy, ~30 ms)::

    ALTER DATABASE db ALLOW_CONNECTIONS false    -- no new session meanwhile
    pg_terminate_backend(every session on db)    -- the app sees 57P01 and reconnects
    BEGIN; db -> old; spare -> db; ALLOW_CONNECTIONS true; COMMIT
    (background) DROP DATABASE old; CREATE DATABASE spare TEMPLATE snapshot

Snapshots and spares are named ``pyairtable_snap_<hash>`` / ``pyairtable_spare_<hash>``
and carry a JSON comment marking them ours, with the snapshot's key: a kept stack's
snapshot is found again by a later run, and one with another key is dropped and taken
again. Nothing without our name and mark is ever dropped. What a database holds
outside its data (owner, grants, settings) comes back too: see pgdb.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..support.errors import ResetError
from .pgdb import Database, Lit, databases, execute, present

MARK = "pytest-pyairtable reset"
KINDS = ("snap", "spare", "old")
TERMINATE_SECONDS = 10.0
APP_NAME = "pytest-pyairtable reset"


_OURS = """
SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database
WHERE datname LIKE 'pyairtable\\_%'
"""


class PostgresSnapshot:
    def __init__(self, service: str, dsn: str, key: str) -> None:
        from psycopg.conninfo import conninfo_to_dict

        self.service = service
        self.dsn = dsn
        self.key = key
        own = str(conninfo_to_dict(dsn).get("dbname") or "")
        self._own_db = own
        # Where we connect to swap databases: never one we replace.
        self._maintenance = "template1" if own == "postgres" else "postgres"
        self.databases: list[Database] = []
        self._lock = threading.Lock()
        self._renewing: dict[str, threading.Thread] = {}
        self._renew_errors: dict[str, Exception] = {}
        self._kept: Any = None  # a session to reuse (never one on template1: see _session)

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        """The maintenance session. One on ``postgres`` is kept between resets (a
        connection costs more than the swap); one on template1 is not, since while it
        is open nobody can CREATE DATABASE from template1, as Django's test runner does."""
        if self._maintenance == "template1":
            with self._connect() as conn:
                yield conn
            return
        if self._kept is None or self._kept.closed or not _alive(self._kept):
            self._kept = self._connect()
        yield self._kept

    def _connect(self) -> Any:
        import psycopg
        from psycopg.conninfo import make_conninfo

        conninfo = make_conninfo(self.dsn, dbname=self._maintenance, application_name=APP_NAME)
        try:
            return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise ResetError(
                f"service '{self.service}': cannot connect to its database "
                f"'{self._maintenance}' to snapshot or restore the others: {exc}"
            ) from None

    def _comment(self, kind: str, db: Database) -> str:
        return json.dumps(
            {"mark": MARK, "kind": kind, "key": self.key, "database": dataclasses.asdict(db)}
        )

    # -- snapshot ----------------------------------------------------------------

    def take(self) -> bool:
        """Find this key's snapshot in the server (a kept stack's) or take it; True if
        taken now. Either way spares start being made in the background."""
        with self._lock, self._session() as conn:
            ours = _ours(conn)
            snaps = [meta for meta in ours.values() if meta.get("kind") == "snap"]
            reused = bool(snaps) and all(meta.get("key") == self.key for meta in snaps)
            if reused:
                self.databases = [Database(**meta["database"]) for meta in snaps]
            else:
                for name in ours:  # another stack's (or a changed one's): ours to drop
                    execute(conn, "DROP DATABASE IF EXISTS {}", name)
                self.databases = self._list(conn)
                self._copy_to_snapshots(conn)
        for db in self.databases:
            self._renew_in_background(db)
        return not reused

    def _list(self, conn: Any) -> list[Database]:
        def keep(name: str) -> bool:
            return _kind_of(name) is None and (name != "postgres" or self._own_db == "postgres")

        return databases(conn, keep)

    def _copy_to_snapshots(self, conn: Any) -> None:
        names = [db.name for db in self.databases]
        self._close_doors(conn, names)
        try:
            for db in self.databases:
                snap = db.our("snap")
                execute(
                    conn, "CREATE DATABASE {} TEMPLATE {} ALLOW_CONNECTIONS false", snap, db.name
                )
                execute(conn, "COMMENT ON DATABASE {} IS {}", snap, Lit(self._comment("snap", db)))
        finally:
            self._open_doors(conn, names)

    # -- restore -------------------------------------------------------------------

    def restore(self) -> None:
        with self._lock:
            for db in self.databases:
                self._await_spare(db)
            with self._session() as conn:
                there = present(conn, self.service, [db.name for db in self.databases])
                names = [db.name for db in self.databases if db.name in there]
                self._close_doors(conn, names)
                try:
                    with conn.transaction():
                        for db in self.databases:
                            self._swap(conn, db, db.name in there)
                except BaseException:
                    self._open_doors(conn, names)
                    raise
        for db in self.databases:
            self._renew_in_background(db)

    def _swap(self, conn: Any, db: Database, present: bool) -> None:
        if present:
            execute(conn, "ALTER DATABASE {} RENAME TO {}", db.name, db.our("old"))
            execute(
                conn, "COMMENT ON DATABASE {} IS {}", db.our("old"), Lit(self._comment("old", db))
            )
        execute(conn, "ALTER DATABASE {} RENAME TO {}", db.our("spare"), db.name)
        execute(conn, "ALTER DATABASE {} ALLOW_CONNECTIONS true", db.name)
        execute(conn, "COMMENT ON DATABASE {} IS {}", db.name, Lit(db.comment))

    def _close_doors(self, conn: Any, names: list[str]) -> None:
        """No new session on ``names``, and none left: what a template, a rename and a
        drop need. Sessions that were starting as the door closed are ended as they show."""
        if not names:
            return
        for name in names:
            execute(conn, "ALTER DATABASE {} ALLOW_CONNECTIONS false", name)
        deadline = time.monotonic() + TERMINATE_SECONDS
        while True:
            left = conn.execute(
                "SELECT pid, application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname::text = ANY(%s) AND pid <> pg_backend_pid()",
                [names],
            ).fetchall()
            if not left:
                return
            if time.monotonic() > deadline:
                sessions = ", ".join(
                    f"{pid} ({app or 'no application_name'})" for pid, app, _ in left
                )
                raise ResetError(
                    f"service '{self.service}': sessions {sessions} on {', '.join(names)} did "
                    f"not end within {TERMINATE_SECONDS:.0f}s of pg_terminate_backend. Fix: "
                    "see what they run in pg_stat_activity (a stuck extension, a COPY)."
                )
            time.sleep(0.001)

    def _open_doors(self, conn: Any, names: list[str]) -> None:
        for name in names:
            execute(conn, "ALTER DATABASE {} ALLOW_CONNECTIONS true", name)

    # -- spares --------------------------------------------------------------------

    def _renew_in_background(self, db: Database) -> None:
        thread = threading.Thread(
            target=self._renew_quietly, args=(db,), name=f"pyairtable-spare-{db.name}", daemon=True
        )
        self._renewing[db.name] = thread
        thread.start()

    def _renew_quietly(self, db: Database) -> None:
        try:
            self._renew(db)
        except Exception as exc:  # the next restore tries again, and reports it then
            self._renew_errors[db.name] = exc

    def _await_spare(self, db: Database) -> None:
        thread = self._renewing.pop(db.name, None)
        if thread is not None:
            thread.join()
        if self._renew_errors.pop(db.name, None) is not None:
            self._renew(db)  # once more, here: its error is the reset's

    def _renew(self, db: Database) -> None:
        """Drop the replaced database and make the next spare, unless there is one."""
        with self._connect() as conn:
            execute(conn, "DROP DATABASE IF EXISTS {}", db.our("old"))
            spare = db.our("spare")
            if _ours(conn).get(spare, {}).get("key") == self.key:
                return
            execute(conn, "DROP DATABASE IF EXISTS {}", spare)
            db.make_copy(conn, spare, db.our("snap"), self._comment("spare", db))

    # -- the end -------------------------------------------------------------------

    def join(self) -> None:
        for thread in list(self._renewing.values()):
            thread.join()

    def discard(self) -> None:
        """Drop this snapshot and its spares (the end of a run that keeps nothing)."""
        self.join()
        with self._lock, self._session() as conn:
            for name, meta in _ours(conn).items():
                if meta.get("key") == self.key:
                    execute(conn, "DROP DATABASE IF EXISTS {}", name)
        self.close()

    def close(self) -> None:
        self.join()
        if self._kept is not None:
            self._kept.close()
            self._kept = None


def _kind_of(name: str) -> str | None:
    for kind in KINDS:
        prefix = f"pyairtable_{kind}_"
        if name.startswith(prefix) and len(name) == len(prefix) + 16:
            return kind
    return None


def _ours(conn: Any) -> dict[str, dict[str, Any]]:
    """Our databases (by name and mark), each with its comment's metadata."""
    found = {}
    for name, comment in conn.execute(_OURS).fetchall():
        if _kind_of(name) is None:
            continue
        try:
            meta = json.loads(comment or "")
        except ValueError:
            continue
        if isinstance(meta, dict) and meta.get("mark") == MARK:
            found[name] = meta
    return found


def _alive(conn: Any) -> bool:
    """Whether a kept session still works (the server may have been restarted by a fault
    test since): one round trip, cheaper than a new connection."""
    import psycopg

    try:
        conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        conn.close()
        return False
