"""State reset, opt in: snapshots of a stack's PostgreSQL and Redis services, taken once
when the stack is first up (migration jobs done), restored before the tests that ask.

A service can be reset when its probe speaks PostgreSQL or Redis (derived from a
``postgres*``/``redis*`` image, or ``x-pyairtable.probe: {postgres: DSN}``): the probe's
DSN or URL is how we reach it. What is restored, which way, and what a connected app
sees, is in pgrestore.py, pginplace.py, pgsnap.py and redissnap.py (and
docs/reference.md, "State reset"). The same snapshot is what xdist workers' own
databases are copied from (session/isolation.py).

A snapshot has a key: the stack's fingerprint (every service's definition, a migration
job's included) and the run id of the stack it was taken in. PostgreSQL snapshots live
in the server, so a kept stack keeps them; Redis ones live in memory, and in a file
beside a kept stack's record. A later run that attaches to the kept stack finds them by
that key; a snapshot with another key is dropped and taken again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..support.errors import ResetError, UnknownServiceError
from ..support.files import read_text, write_json

if TYPE_CHECKING:
    from ..model.spec import ServiceSpec
    from .pgsnap import PostgresSnapshot
    from .redissnap import RedisSnapshot

    Snapshot = PostgresSnapshot | RedisSnapshot

ALL = "*"  # in a request for resets: every service that can be reset
KINDS = ("postgres", "redis")


def resettable(spec: ServiceSpec) -> bool:
    return spec.probe.kind in KINDS and bool(spec.probe.target)


def snapshot_file(record: Path) -> Path:
    """Beside a kept stack's record: the Redis snapshots (mode 0600: it is their data)."""
    return record.with_name(record.name.removesuffix(".json") + ".reset.json")


class Reset:
    """What ``pyairtable_reset`` yields: ``services``, restored before the test; call it
    (``pyairtable_reset("db")``, or with no names for all) to restore again mid-test,
    with the stack held alone meanwhile."""

    def __init__(self, services: Iterable[str], again: Callable[[list[str] | None], list[str]]):
        self.services = tuple(services)
        self._again = again

    def __call__(self, *names: str) -> list[str]:
        return self._again(list(names) or None)

    def __repr__(self) -> str:
        return f"<pyairtable_reset restored={list(self.services)}>"


class Resets:
    """The snapshots of one stack (this run's, or the kept stack it attached to)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.snapshots: dict[str, Snapshot] = {}
        self.errors: dict[str, ResetError] = {}
        self.notices: list[str] = []

    def take(
        self, specs: Mapping[str, ServiceSpec], names: Iterable[str], store: Path | None
    ) -> None:
        """Snapshot ``names`` (those not yet taken); a kept stack's Redis snapshots are
        read from ``store`` when their key matches, and written there when taken."""
        from .pgsnap import PostgresSnapshot
        from .redissnap import RedisSnapshot

        stored = _read(store, self.key) if store is not None else {}
        for name in names:
            if name in self.snapshots or name in self.errors:
                continue
            spec = specs[name]
            try:
                if spec.probe.kind == "postgres":
                    pg = PostgresSnapshot(name, spec.probe.target, self.key)
                    taken = pg.take()
                    self.snapshots[name] = pg
                    self.notices.extend(pg.notices)
                elif name in stored:
                    rs = RedisSnapshot(name, spec.probe.target, self.key)
                    rs.load_json(stored[name])
                    self.snapshots[name] = rs
                    taken = False
                else:
                    rs = RedisSnapshot(name, spec.probe.target, self.key)
                    rs.take()
                    self.snapshots[name] = rs
                    taken = True
            except ResetError as exc:
                self.errors[name] = exc
                continue
            if store is not None and taken:
                self.notices.append(
                    f"reset: took a snapshot of '{name}' in the kept stack, from its data "
                    "as it is now (it had none for this stack)"
                )
        if store is not None:
            self.save(store)

    def restore(
        self, names: Iterable[str], own_pids: Iterable[int] = (), strategy: str = "auto"
    ) -> list[str]:
        """Put ``names`` back; ``own_pids``: the processes running the test, whose
        PostgreSQL sessions a restore must keep (pgrestore.py)."""
        from .pgrestore import restore as restore_postgres
        from .pgsessions import Owners
        from .pgsnap import PostgresSnapshot

        owners = Owners(own_pids)
        done = []
        for name in names:
            if name in self.errors:
                raise self.errors[name].fresh()
            snapshot = self.snapshots[name]
            if isinstance(snapshot, PostgresSnapshot):
                restore_postgres(snapshot, owners, strategy=strategy)
            else:
                snapshot.restore()
            done.append(name)
        return done

    def save(self, path: Path) -> None:
        """Write the Redis snapshots beside a kept stack's record."""
        from .redissnap import RedisSnapshot

        redis = {n: s.to_json() for n, s in self.snapshots.items() if isinstance(s, RedisSnapshot)}
        if not redis:
            return
        write_json(path, {"key": self.key, "services": redis})

    def discard(self) -> None:
        """The end of a run that keeps nothing: drop the snapshots from the servers (a
        compose volume may outlive the run), best effort."""
        from .pgsnap import PostgresSnapshot

        for name, snapshot in self.snapshots.items():
            if isinstance(snapshot, PostgresSnapshot):
                try:
                    snapshot.discard()
                except Exception as exc:  # the stack stops next, whatever happens here
                    self.notices.append(f"reset: could not drop the snapshot of '{name}': {exc}")

    def join(self) -> None:
        """No more resets: wait for the background work, close the sessions."""
        for snapshot in self.snapshots.values():
            snapshot.close()


def choose(
    asked: Iterable[str] | None, specs: Mapping[str, ServiceSpec], topology: Iterable[str]
) -> list[str]:
    """The services a reset of ``asked`` (None: all) means, among the started ``specs``;
    a clear error for a name that is unknown or cannot be reset."""
    can = sorted(n for n, s in specs.items() if resettable(s))
    if asked is None:
        if not can:
            raise ResetError(
                "reset: no service of this run can be reset (only PostgreSQL and Redis "
                "services can). Fix: name the services in @pytest.mark.pyairtable_reset(...)."
            )
        return can
    names = list(dict.fromkeys(asked))
    known = set(topology)
    for name in names:
        if name not in known:
            raise UnknownServiceError(
                f"reset: no service '{name}' in the stack; services that can be reset: "
                f"{', '.join(can) or 'none'}. Fix: name one of them in the marker or call."
            )
        if name in specs and not resettable(specs[name]):
            raise ResetError(
                f"reset: service '{name}' cannot be reset: only PostgreSQL and Redis "
                "services can (by their image or x-pyairtable.probe). Resettable: "
                f"{', '.join(can) or 'none'}."
            )
    return names


def _read(path: Path, key: str) -> dict[str, Any]:
    try:
        data = json.loads(read_text(path))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("key") != key:
        return {}
    services = data.get("services")
    return services if isinstance(services, dict) else {}
