"""A PostgreSQL service's databases, snapshotted once, and the swap that puts one back
whole when restoring in place cannot (pgrestore.py chooses; pginplace.py restores in place).

Snapshot: each database of the server that takes connections and is no template (and
``postgres`` only when it is the service's own; never a worker's copy) is copied with
``CREATE DATABASE <snapshot> TEMPLATE <db>``. A template must have no sessions: when
nobody is connected (the usual case: the stack's one-shot jobs are done and the tests
have not started) the copy is made at once; otherwise the sessions are ended first,
once, and the run's summary says whose. The swap puts in a *spare*, a copy of the
snapshot made ahead of time (after the first swap, in a background thread), so that it
costs renames, not a copy (benchmarks/reset.py: DROP + CREATE ... TEMPLATE by hand ~130
ms, the swap ~6 ms with its spare ready)::

    ALTER DATABASE db ALLOW_CONNECTIONS false    -- no new session meanwhile
    pg_terminate_backend(every session on db)    -- the app sees 57P01 and reconnects
    BEGIN; db -> old; spare -> db; ALLOW_CONNECTIONS true; COMMIT
    (background) DROP DATABASE old; CREATE DATABASE spare TEMPLATE snapshot

Snapshots and spares are named ``pyairtable_snap_<hash>`` / ``pyairtable_spare_<hash>``
and carry a JSON comment marking them ours, with the snapshot's key: a kept stack's
snapshot is found again by a later run, and one with another key is dropped and taken
again. Nothing without our name and mark is ever dropped. What a database holds
outside its data (owner, grants, settings) comes back too: see pgdb.py. The snapshot
is also what xdist workers' own databases are copied from (pgcopies.py).

(Over 350 lines: the snapshot, its spares and the swap share one lock and one
maintenance session; choosing a strategy and restoring in place live beside it.)
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
from . import pginplace
from .pgdb import Database, Lit, databases, execute, present
from .pgsessions import APP_NAME, sessions_on

MARK = "pytest-pyairtable reset"
COPY_MARK = "pytest-pyairtable worker copy"  # a worker's database (pgcopies.py)
KINDS = ("snap", "spare", "old")
TERMINATE_SECONDS = 10.0


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
        self.notices: list[str] = []  # for the run's summary: sessions the snapshot ended
        self.lock = threading.RLock()
        self._renewing: dict[str, threading.Thread] = {}
        self._renew_errors: dict[str, Exception] = {}
        self._kept: Any = None  # a session to reuse (never one on template1: see _session)
        self._contents: dict[str, pginplace.Contents | None] = {}
        self._inplace: dict[str, Any] = {}  # a session on each database restored in place

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """The maintenance session (hold ``lock``). One on ``postgres`` is kept between
        resets (a connection costs more than the swap); one on template1 is not, since
        while it is open nobody can CREATE DATABASE from template1, as Django's test
        runner does."""
        if self._maintenance == "template1":
            with self._connect() as conn:
                yield conn
            return
        if self._kept is None or self._kept.closed or not _alive(self._kept):
            self._kept = self._connect()
        yield self._kept

    def _connect(self, dbname: str | None = None, *, autocommit: bool = True) -> Any:
        import psycopg
        from psycopg.conninfo import make_conninfo

        dbname = dbname or self._maintenance
        conninfo = make_conninfo(self.dsn, dbname=dbname, application_name=APP_NAME)
        try:
            return psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=10)
        except psycopg.Error as exc:
            raise ResetError(
                f"service '{self.service}': cannot connect to its database "
                f"'{dbname}' to snapshot or restore: {exc}"
            ) from None

    def _comment(self, kind: str, db: Database) -> str:
        return json.dumps(
            {"mark": MARK, "kind": kind, "key": self.key, "database": dataclasses.asdict(db)}
        )

    # -- snapshot ----------------------------------------------------------------

    def take(self) -> bool:
        """Find this key's snapshot in the server (a kept stack's) or take it; True if
        taken now."""
        with self.lock, self.session() as conn:
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
        return not reused

    def _list(self, conn: Any) -> list[Database]:
        def keep(name: str) -> bool:
            return _kind_of(name) is None and (name != "postgres" or self._own_db == "postgres")

        return [db for db in databases(conn, keep) if not is_copy_comment(db.comment)]

    def _copy_to_snapshots(self, conn: Any) -> None:
        """Each database copied at once when nobody is connected to it; the others with
        their sessions ended first (a template must have none), said in ``notices``."""
        import psycopg

        busy = []
        for db in self.databases:
            try:
                self._copy_one(conn, db)
            except psycopg.errors.ObjectInUse:
                busy.append(db)
        if not busy:
            return
        names = [db.name for db in busy]
        ended = sessions_on(conn, names)
        self._close_doors(conn, names)
        try:
            for db in busy:
                self._copy_one(conn, db)
        finally:
            self._open_doors(conn, names)
        if ended:
            apps = sorted({s.application or "no application_name" for s in ended})
            self.notices.append(
                f"service '{self.service}': the snapshot of {', '.join(names)} ended "
                f"{len(ended)} session(s) connected to it ({', '.join(apps)}): a database "
                "is copied only with no session on it; their clients reconnect"
            )

    def _copy_one(self, conn: Any, db: Database) -> None:
        snap = db.our("snap")
        execute(conn, "CREATE DATABASE {} TEMPLATE {} ALLOW_CONNECTIONS false", snap, db.name)
        execute(conn, "COMMENT ON DATABASE {} IS {}", snap, Lit(self._comment("snap", db)))

    def contents(self, db: Database) -> pginplace.Contents | None:
        """What the snapshot of ``db`` holds, read once (None: too much to hold)."""
        with self.lock:
            if db.name not in self._contents:
                self.join()  # a spare being made from the snapshot holds it as a template
                snap = db.our("snap")
                with self.session() as conn:
                    execute(conn, "ALTER DATABASE {} ALLOW_CONNECTIONS true", snap)
                    try:
                        with self._connect(snap) as reader:
                            self._contents[db.name] = pginplace.read_contents(reader)
                    finally:
                        execute(conn, "ALTER DATABASE {} ALLOW_CONNECTIONS false", snap)
            return self._contents[db.name]

    def inplace_session(self, name: str) -> Any:
        """A session on database ``name`` for restores in place (kept between them)."""
        conn = self._inplace.get(name)
        if conn is None or conn.closed or not _alive(conn):
            conn = self._inplace[name] = self._connect(name, autocommit=False)
        return conn

    def close_inplace(self, name: str) -> None:
        conn = self._inplace.pop(name, None)
        if conn is not None:
            conn.close()

    def forget(self, name: str) -> None:
        """Database ``name`` is a fresh copy of the snapshot again (swapped or remade)."""
        self.close_inplace(name)
        for contents in self._contents.values():
            if contents is not None:
                contents.clean.pop(name, None)

    # -- the swap ------------------------------------------------------------------

    def swap(self, db: Database) -> None:
        """Replace ``db`` by a copy of its snapshot, ending every session on it."""
        with self.lock:
            self._await_spare(db)
            self.close_inplace(db.name)
            with self.session() as conn:
                there = db.name in present(conn, self.service, [db.name])
                names = [db.name] if there else []
                self._close_doors(conn, names)
                try:
                    with conn.transaction():
                        self._swap(conn, db, there)
                except BaseException:
                    self._open_doors(conn, names)
                    raise
            self.forget(db.name)
            self._renew_in_background(db)  # under the lock: contents() reads the snapshot

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
        failed = self._renew_errors.pop(db.name, None) is not None
        if thread is None or failed:
            self._renew(db)  # the first swap's spare; or once more: its error is the reset's

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
        with self.lock, self.session() as conn:
            for name, meta in _ours(conn).items():
                if meta.get("key") == self.key:
                    execute(conn, "DROP DATABASE IF EXISTS {}", name)
        self.close()

    def close(self) -> None:
        self.join()
        for name in list(self._inplace):
            self.close_inplace(name)
        if self._kept is not None:
            self._kept.close()
            self._kept = None


def is_copy_comment(comment: str | None) -> bool:
    """Whether a database's comment marks it as a worker's copy (pgcopies.py)."""
    try:
        meta = json.loads(comment or "")
    except ValueError:
        return False
    return isinstance(meta, dict) and meta.get("mark") == COPY_MARK


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
