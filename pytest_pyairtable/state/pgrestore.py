"""Which way a PostgreSQL database goes back to its snapshot, per database and moment:

1. **In place** (pginplace.py) whenever it can: the rows of the tables that changed,
   and every sequence, put back in one transaction while every session stays
   connected: the test process's own pool and long-lived ORM session, the stack's
   services. It cannot when the schema changed, or the data is too big to hold.
2. Otherwise **the swap** (pgsnap.py) for the stack's database, or, for an xdist
   worker's copy, a fresh copy: both end every session on the database. So they run
   only when no session on it is the test process's own, nor one whose owner cannot
   be told; else the reset fails, naming those sessions and the fix. On a worker's
   copy, every session counts as the test process's own (nothing else uses it).

``strategy`` forces one way (benchmarks and tests): "in place" fails rather than swap.
"""

from __future__ import annotations

from typing import Any

from ..support.errors import ResetError
from . import pginplace
from .pgdb import Database
from .pgsessions import Owners, Session, sessions_on
from .pgsnap import PostgresSnapshot

AUTO, IN_PLACE, SWAP = "auto", "in place", "swap"


def restore(snapshot: PostgresSnapshot, owners: Owners, *, strategy: str = AUTO) -> dict[str, str]:
    """Each of the snapshot's databases put back; database -> how."""
    return {
        db.name: restore_database(snapshot, db, db.name, owners, strategy=strategy)
        for db in snapshot.databases
    }


def restore_database(
    snapshot: PostgresSnapshot,
    db: Database,
    target: str,
    owners: Owners,
    *,
    copy: bool = False,
    strategy: str = AUTO,
) -> str:
    """``target`` (``db`` itself, or a worker's ``copy`` of it) as ``db`` was at the
    snapshot; returns how ("in place: 2 table(s)", "swapped", "copied anew")."""
    import psycopg

    with snapshot.lock:
        reason = "the swap was asked for"
        if strategy != SWAP:
            contents = snapshot.contents(db)
            if contents is None:
                reason = f"it holds more than {pginplace.MAX_BYTES >> 20} MiB, too much to hold"
            else:
                try:
                    conn = snapshot.inplace_session(target)
                    outcome = pginplace.restore(conn, contents, target, service=snapshot.service)
                except psycopg.errors.LockNotAvailable:
                    raise _held(snapshot, target, owners, copy) from None
                except ResetError as exc:
                    outcome = pginplace.Outcome([], f"it cannot be reached ({exc})")
                if not outcome.reason:
                    return f"in place: {len(outcome.changed)} table(s)"
                reason = outcome.reason
            if strategy == IN_PLACE:
                raise ResetError(
                    f"service '{snapshot.service}': database '{target}' cannot be "
                    f"restored in place: {reason}"
                )
        snapshot.close_inplace(target)
        with snapshot.session() as conn:
            sessions = sessions_on(conn, [target])
        refused = sessions if copy else [s for s in sessions if owners.of(s) != "other"]
        if refused:
            listed = owners.listed(refused)
            raise _refusal(snapshot, target, reason, listed, refused if copy else None)
        if copy:
            from .pgcopies import remake

            remake(snapshot, db, target)
            return "copied anew"
        snapshot.swap(db)
        return "swapped"


def _refusal(
    snapshot: PostgresSnapshot,
    target: str,
    reason: str,
    listed: str,
    sessions: list[Session] | None,
) -> ResetError:
    if sessions is not None:  # a worker's copy
        pids = ", ".join(str(s.pid) for s in sessions)
        listed = f"sessions {pids} (a worker's copy is its test process's alone)"
    return ResetError(
        f"service '{snapshot.service}': database '{target}' cannot be restored in place: "
        f"{reason}. Only replacing it would restore it, and that ends sessions this run "
        f"must not end without saying so: {listed}. Fix: undo the schema change in the "
        "test that made it, or close the test's connections before the reset "
        "(engine.dispose(), session.close()), or give the test that changes the schema "
        "its own fixtures (function scope)."
    )


def _held(snapshot: PostgresSnapshot, target: str, owners: Owners, copy: bool) -> ResetError:
    """The restore waited too long for a table: name the sessions holding one open."""
    with snapshot.session() as conn:
        pids = _lockers(conn, target)
        sessions = [s for s in sessions_on(conn, [target]) if s.pid in pids]
    listed = owners.listed(sessions) if sessions else "sessions that have ended since"
    return ResetError(
        f"service '{snapshot.service}': the restore of '{target}' waited "
        f"{pginplace.LOCK_TIMEOUT} for tables that open transactions have written to or "
        f"locked: {listed}. A reset restores rows in place only once no transaction "
        "holds them. Fix: commit or roll back before the test ends (a session-scoped ORM "
        "session: session.rollback() in the fixture's teardown)."
    )


_LOCKERS = """
SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
WHERE d.datname = %s AND l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid()
  AND l.mode NOT IN ('AccessShareLock')
"""


def _lockers(conn: Any, database: str) -> set[int]:
    return {pid for (pid,) in conn.execute(_LOCKERS, [database]).fetchall()}
