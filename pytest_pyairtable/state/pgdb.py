"""A PostgreSQL database as a reset must put it back: what it holds outside its own
data (owner, grants, settings, connection limit, comment), read from the catalogs at
the snapshot and applied to each copy made from it. Grants go through GRANT (so the
server tracks the roles they name); settings are copied into pg_db_role_setting as
stored, since re-parsing a list such as search_path from its text is lossy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..support.errors import ResetError


@dataclass
class Database:
    """One database as it was at the snapshot (what a spare is made to look like)."""

    name: str
    owner: str
    connlimit: int
    comment: str | None
    has_acl: bool  # False: the default privileges (datacl NULL)
    acl: list[list[Any]]  # [grantee ("" for PUBLIC), privilege, grantable]
    settings: list[list[Any]]  # [role or None, ["name=value", ...]]

    def our(self, kind: str) -> str:
        return f"pyairtable_{kind}_{hashlib.sha256(self.name.encode()).hexdigest()[:16]}"

    def make_copy(
        self, conn: Any, name: str, template: str, comment: str, *, allow: bool = False
    ) -> None:
        """``name``, a copy of ``template`` that looks like this database, taking no
        connections until it is swapped in (unless ``allow``: a worker's copy, used at
        once). FILE_COPY (PostgreSQL 15+): half the time of the default WAL_LOG for a
        small database here (benchmarks/reset.py, back to back); its checkpoints happen
        in the background, off any test's way."""
        create = (
            "CREATE DATABASE {} TEMPLATE {} OWNER {} CONNECTION LIMIT {} ALLOW_CONNECTIONS "
            + ("true" if allow else "false")
        )
        if conn.info.server_version >= 150000:
            create += " STRATEGY FILE_COPY"
        execute(conn, create, name, template, self.owner, Lit(int(self.connlimit)))
        with conn.transaction():
            _grant(conn, name, self)
            _settings(conn, name, self)
            execute(conn, "COMMENT ON DATABASE {} IS {}", name, Lit(comment))


LIST = """
SELECT d.datname, pg_get_userbyid(d.datdba), d.datconnlimit,
       shobj_description(d.oid, 'pg_database'), d.datacl IS NOT NULL,
       COALESCE((SELECT json_agg(json_build_array(
                   CASE WHEN a.grantee = 0 THEN '' ELSE pg_get_userbyid(a.grantee) END,
                   a.privilege_type, a.is_grantable))
                 FROM aclexplode(d.datacl) a), '[]'),
       COALESCE((SELECT json_agg(json_build_array(
                   CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END,
                   s.setconfig))
                 FROM pg_db_role_setting s WHERE s.setdatabase = d.oid), '[]')
FROM pg_database d WHERE d.datallowconn AND NOT d.datistemplate ORDER BY d.datname
"""


def databases(conn: Any, keep: Callable[[str], bool]) -> list[Database]:
    """The databases that take connections and are no template, those ``keep`` keeps."""
    return [
        Database(name, owner, limit, comment, has_acl, list(acl), list(settings))
        for name, owner, limit, comment, has_acl, acl, settings in conn.execute(LIST).fetchall()
        if keep(name)
    ]


@dataclass(frozen=True)
class Lit:
    """A value written into a statement that takes no parameters (COMMENT, CREATE)."""

    value: Any


def execute(conn: Any, template: str, *parts: str | Lit) -> None:
    """``template`` with each ``{}`` an identifier (a str) or a literal (a Lit)."""
    from psycopg import sql

    composed = [sql.Literal(p.value) if isinstance(p, Lit) else sql.Identifier(p) for p in parts]
    conn.execute(sql.SQL(template).format(*composed))


def present(conn: Any, service: str, names: list[str]) -> set[str]:
    """Which of ``names`` exist now; refuses databases held by prepared transactions."""
    rows = conn.execute(
        "SELECT d.datname, p.gid FROM pg_database d "
        "LEFT JOIN pg_prepared_xacts p ON p.database = d.datname WHERE d.datname::text = ANY(%s)",
        [names],
    ).fetchall()
    prepared = [(gid, db) for db, gid in rows if gid is not None]
    if prepared:
        listed = ", ".join(f"{gid!r} on {db}" for gid, db in prepared)
        raise ResetError(
            f"service '{service}': prepared transactions {listed} hold the database; a reset "
            "cannot replace it. Fix: COMMIT PREPARED or ROLLBACK PREPARED them in the test "
            "that prepared them."
        )
    return {db for db, _ in rows}


def _grant(conn: Any, spare: str, db: Database) -> None:
    if not db.has_acl:
        return  # the defaults, as CREATE DATABASE makes them
    execute(conn, "REVOKE ALL ON DATABASE {} FROM PUBLIC", spare)
    execute(conn, "REVOKE ALL ON DATABASE {} FROM {}", spare, db.owner)
    for grantee, privilege, grantable in db.acl:
        option = " WITH GRANT OPTION" if grantable else ""
        if privilege not in ("CREATE", "CONNECT", "TEMPORARY"):
            continue
        if grantee:
            execute(conn, f"GRANT {privilege} ON DATABASE {{}} TO {{}}{option}", spare, grantee)
        else:
            execute(conn, f"GRANT {privilege} ON DATABASE {{}} TO PUBLIC{option}", spare)


def _settings(conn: Any, spare: str, db: Database) -> None:
    """``ALTER DATABASE/ROLE ... SET`` values, copied as stored (no re-parsing of lists
    such as search_path); a role that no longer exists loses its setting."""
    for role, config in db.settings:
        conn.execute(
            "INSERT INTO pg_catalog.pg_db_role_setting (setdatabase, setrole, setconfig) "
            "SELECT d.oid, COALESCE(r.oid, 0), %s FROM pg_database d "
            "LEFT JOIN pg_roles r ON r.rolname = %s WHERE d.datname = %s "
            "AND (%s::text IS NULL OR r.oid IS NOT NULL)",
            [config, role, spare, role],
        )
