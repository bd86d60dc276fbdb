"""Who is connected to a PostgreSQL database, and which of those sessions belong to the
test process itself: what a reset must know before it ends any session.

pg_stat_activity gives each session's client address and port; a client on this host
holds a TCP socket with that local port, which /proc lists among the process's own
(backends/procfs.py). A session over a Unix socket, or from another host or a container
network, cannot be told apart that way: it counts as "cannot tell", never as someone
else's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..backends.procfs import tcp_ports_of

APP_NAME = "pytest-pyairtable reset"  # the application_name of our own sessions

_SESSIONS = """
SELECT pid, datname, host(client_addr), client_port, application_name, state,
       EXTRACT(EPOCH FROM now() - xact_start)::float, left(query, 100)
FROM pg_stat_activity
WHERE datname::text = ANY(%s) AND pid <> pg_backend_pid()
  AND backend_type = 'client backend' AND application_name <> %s
"""

_LOOPBACK = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class Session:
    pid: int  # the server's backend process
    database: str
    client_addr: str | None  # None: a Unix socket
    client_port: int | None
    application: str
    state: str
    in_transaction_for: float | None  # seconds, or None when not in a transaction
    query: str

    def describe(self, owner: str) -> str:
        where = (
            "a local socket"
            if self.client_addr is None
            else f"{self.client_addr}:{self.client_port}"
        )
        app = f" '{self.application}'" if self.application else ""
        txn = (
            f", in a transaction for {self.in_transaction_for:.1f}s"
            if self.in_transaction_for is not None
            else ""
        )
        return f"session {self.pid}{app} from {where} ({owner}; {self.state or 'unknown'}{txn})"


def sessions_on(conn: Any, databases: Iterable[str]) -> list[Session]:
    """The client sessions on ``databases`` but ours (maintenance and reset sessions)."""
    rows = conn.execute(_SESSIONS, [list(databases), APP_NAME]).fetchall()
    return [
        Session(pid, db, addr, _port(port), app or "", state or "", since, query or "")
        for pid, db, addr, port, app, state, since, query in rows
    ]


def _port(port: int | None) -> int | None:
    return port if port is not None and port >= 0 else None  # -1: a Unix socket


class Owners:
    """Which sessions are the test process's own (``pids``: the processes running the
    tests), which are surely not, and which cannot be told."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.pids = tuple(pids)
        self._ports: set[int] | None = None

    def _own_ports(self) -> set[int]:
        if self._ports is None:
            self._ports = set()
            for pid in self.pids:
                self._ports |= tcp_ports_of(pid)
        return self._ports

    def of(self, session: Session) -> str:
        """'own', 'other' or 'unknown'."""
        if session.client_addr not in _LOOPBACK or session.client_port is None:
            return "unknown"
        return "own" if session.client_port in self._own_ports() else "other"

    def label(self, session: Session) -> str:
        return {
            "own": "the test process's own connection",
            "other": "another process on this host",
            "unknown": "cannot tell whose",
        }[self.of(session)]

    def listed(self, sessions: Iterable[Session]) -> str:
        return "; ".join(s.describe(self.label(s)) for s in sessions)
