"""Restoring a PostgreSQL database in place, while its sessions stay connected: the
rows of each table that changed and every sequence, put back from the snapshot.

The snapshot's contents are read once, from the snapshot database, into memory (COPY
text, up to ``MAX_BYTES``). A table changed when its (row count, newest ``xmin``)
differs from what it was after the snapshot or the last restore: an insert or update
writes a new ``xmin``, a delete lowers the count. A restore is one transaction::

    SET LOCAL session_replication_role = replica  -- no triggers, no FK checks: the
                                                  -- rows are put back as they were
    LOCK TABLE <every table> IN EXCLUSIVE MODE    -- writers wait, readers go on
    DELETE FROM ONLY <changed>; COPY <changed> FROM STDIN
    SELECT setval(<every sequence>, <as it was>)

DELETE, not TRUNCATE: TRUNCATE needs ACCESS EXCLUSIVE, which waits for every session
that read the table in a transaction still open (a test's long-lived ORM session).
What in place cannot restore, the schema (tables, columns, constraints, indexes,
functions, types, extensions, large objects), is compared as a signature of the
catalogs: when it differs, only the database swap puts it back (pgsnap.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..support.errors import ResetError

MAX_BYTES = 256 * 1024 * 1024  # snapshot contents held in memory, per database
LOCK_TIMEOUT = "5s"  # a writer that holds a table longer is named in the error

_USER = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"

# Every name put into a statement below comes from format('%I') in the server: quoted.
SIGNATURE = """
SELECT md5(coalesce(string_agg(x, E'\\n' ORDER BY x), '')) FROM (
  SELECT format('schema %I', n.nspname) FROM pg_namespace n WHERE {_USER}
  UNION ALL
  SELECT format('rel %I.%I %s %s', n.nspname, c.relname, c.relkind, c.relpersistence)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER}
  UNION ALL
  SELECT format('col %I.%I %I %s %s %s %s', n.nspname, c.relname, a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated,
                pg_get_expr(d.adbin, d.adrelid))
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE {_USER} AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT format('con %I.%I %I %s', n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid))
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER}
  UNION ALL
  SELECT format('index %s', pg_get_indexdef(i.indexrelid))
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER}
  UNION ALL
  SELECT format('trigger %I %s', t.tgname, pg_get_triggerdef(t.oid))
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER} AND NOT t.tgisinternal
  UNION ALL
  SELECT format('func %s %s', p.oid::regprocedure, md5(p.prosrc))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_USER}
  UNION ALL
  SELECT format('type %I.%I %s', n.nspname, t.typname, t.typtype)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {_USER}
  UNION ALL
  SELECT format('enum %s %s %s', e.enumtypid, e.enumsortorder, e.enumlabel) FROM pg_enum e
  UNION ALL
  SELECT format('ext %s %s', extname, extversion) FROM pg_extension
  UNION ALL
  SELECT format('lo %s', count(*)) FROM pg_largeobject_metadata
) s(x)
""".replace("{_USER}", _USER)

TABLES = """
SELECT format('%I.%I', n.nspname, c.relname), c.oid,
       coalesce((SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum)
                 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                 AND NOT a.attisdropped AND a.attgenerated = ''), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND {_USER}
ORDER BY 1
""".replace("{_USER}", _USER)

SEQUENCES = """
SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND c.relpersistence <> 't' AND {_USER} ORDER BY 1
""".replace("{_USER}", _USER)


@dataclass
class Table:
    name: str  # schema-qualified, quoted
    columns: str  # the columns COPY writes (generated ones are computed again)
    rows: bytes = b""  # COPY text, as at the snapshot


@dataclass
class Contents:
    """A database's data as at the snapshot, and the state each copy of it was left in."""

    signature: str
    tables: list[Table]
    sequences: list[tuple[str, int, bool]]  # name, last_value, is_called
    size: int
    clean: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)
    # clean[database][table]: its fingerprint when it last held the snapshot's rows


def signature(conn: Any) -> str:
    return str(conn.execute(SIGNATURE).fetchone()[0])


def read_contents(conn: Any) -> Contents | None:
    """The contents of the database ``conn`` is on (the snapshot), or None when it
    holds more than MAX_BYTES."""
    tables = [Table(name, columns) for name, _, columns in conn.execute(TABLES).fetchall()]
    size = 0
    with conn.cursor() as cur:
        for table in tables:
            chunks = []
            if table.columns:
                with cur.copy(f"COPY {table.name} ({table.columns}) TO STDOUT") as copy:
                    for chunk in copy:
                        chunks.append(bytes(chunk))
                        size += len(chunk)
                        if size > MAX_BYTES:
                            return None
            table.rows = b"".join(chunks)
    sequences = []
    for (name,) in conn.execute(SEQUENCES).fetchall():
        query = f"SELECT last_value, is_called FROM {name}"  # noqa: S608 - a quoted name
        last, called = conn.execute(query).fetchone()
        sequences.append((name, int(last), bool(called)))
    contents = Contents(signature(conn), tables, sequences, size)
    contents.clean[""] = fingerprints(conn, tables)  # "": the snapshot, as any fresh copy
    return contents


def fingerprints(conn: Any, tables: list[Table]) -> dict[str, tuple[int, int]]:
    if not tables:
        return {}
    parts = [
        f"SELECT {n}, count(*), coalesce(max(xmin::text::bigint), 0) FROM ONLY {t.name}"  # noqa: S608
        for n, t in enumerate(tables)
    ]
    rows = conn.execute(" UNION ALL ".join(parts)).fetchall()
    return {tables[n].name: (int(count), int(newest)) for n, count, newest in rows}


def digest(contents: Contents) -> str:
    """What the snapshot holds, for tests and benchmarks: equal digests, equal data."""
    h = hashlib.sha256(contents.signature.encode())
    for table in contents.tables:
        h.update(table.name.encode() + b"\0" + table.rows)
    return h.hexdigest()


@dataclass
class Outcome:
    changed: list[str]  # the tables whose rows were put back
    reason: str = ""  # why in place could not restore (then nothing was done)


def restore(conn: Any, contents: Contents, database: str, *, service: str) -> Outcome:
    """Put ``database`` (``conn``'s, autocommit off) back to ``contents`` in place;
    ``Outcome.reason`` says why not when the schema changed."""
    import psycopg

    if signature(conn) != contents.signature:
        conn.rollback()
        return Outcome([], "its schema changed since the snapshot (tables, columns, types...)")
    clean = contents.clean.get(database, contents.clean[""])
    try:
        conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        conn.execute("SET LOCAL session_replication_role = replica")
        if contents.tables:
            names = ", ".join(t.name for t in contents.tables)
            conn.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
        now = fingerprints(conn, contents.tables)
        changed = [t for t in contents.tables if now.get(t.name) != clean.get(t.name)]
        with conn.cursor() as cur:
            for table in changed:
                cur.execute(f"DELETE FROM ONLY {table.name}")  # noqa: S608
                if table.columns and table.rows:
                    with cur.copy(f"COPY {table.name} ({table.columns}) FROM STDIN") as copy:
                        copy.write(table.rows)
        if contents.sequences:
            conn.execute(
                "SELECT " + ", ".join("setval(%s, %s, %s)" for _ in contents.sequences),
                [v for seq in contents.sequences for v in seq],
            )
        after = fingerprints(conn, changed)
        conn.commit()
    except psycopg.errors.LockNotAvailable:
        conn.rollback()
        raise
    except psycopg.Error as exc:
        conn.rollback()
        raise ResetError(
            f"service '{service}': restoring database '{database}' in place failed: {exc}"
        ) from None
    contents.clean[database] = {**clean, **after}
    return Outcome([t.name for t in changed])
