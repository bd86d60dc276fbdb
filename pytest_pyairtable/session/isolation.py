"""A database of its own for each xdist worker, by default under xdist, as pytest-django
gives each worker ``test_<db>_gw0``, for any stack with PostgreSQL or Redis services.

- ``prepare`` (the controller, in ``pytest_xdist_setupnodes``, before any worker
  starts): what each worker's databases will be called (state/workerenv.py), and the
  environment variables that name them, which pytest-xdist sets in the worker's process
  before it imports pytest: a rootdir conftest.py and the settings modules it imports
  read them at import.
- ``ensure`` (a worker's first request): once the stack is up and its jobs (migrations,
  seed data) are done, copies of its databases are made from the snapshot
  (state/pgcopies.py; Redis: state/redissnap.py), again for a worker that replaces one
  that went away.
- ``handle``: the worker's handles name its copies (``.url``, ``.details``).
- ``restore``: a reset also puts the worker's copies back.
- ``drop`` (the end of the run, kept stack or not): every copy this run made, whatever
  became of its worker.

The stack's own services keep the stack's databases: a copy is the test process's.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..support.errors import PyAirtableError

if TYPE_CHECKING:
    from ..engine.handle import Handle
    from ..model.spec import ServiceSpec
    from ..state.reset import Resets
    from ..state.workerenv import Plan
    from .runtime import Runtime

SLOT_VAR = "PYAIRTABLE_WORKER_SLOT"  # the worker's slot (gw0...), in its environment
# The names of the variables set for the worker, so that what it starts can be given
# the environment of a plain run (a nested pytest of a suite that tests such suites).
VARS_VAR = "PYAIRTABLE_WORKER_VARS"


class Owner(Protocol):
    """What of the stack's owner (owner.py) the copies need."""

    runtime: Runtime

    def settle(self, main_thread: bool) -> None: ...
    def ready_specs(self) -> dict[str, ServiceSpec]: ...
    def resets(self) -> Resets: ...
    def take(self, names: list[str], specs: dict[str, ServiceSpec]) -> None: ...


@dataclass
class Copies:
    """One worker slot's copies, and the holder (a worker's connection) they are for."""

    holder: str
    postgres: dict[str, dict[str, str]] = field(default_factory=dict)  # service: db -> copy
    redis: dict[str, dict[int, int]] = field(default_factory=dict)  # service: shared -> own


class WorkerIsolation:
    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self.runtime = owner.runtime
        self.plan: Plan | None = None
        self.exported: list[str] = []  # the variables the workers' environment rewrites
        self.workers = 0  # how many xdist workers the run started with
        self.slots: dict[str, Copies] = {}
        self.seconds: list[float] = []  # what each PostgreSQL copy took
        self._errors: dict[str, PyAirtableError] = {}
        self._swept: set[str] = set()
        self._dropped = False
        self._lock = threading.Lock()

    # -- before the workers start ----------------------------------------------------

    def prepare(self, slots: list[str], environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """Slot -> the variables its worker starts with; empty when each worker uses
        the stack's own databases (--pyairtable-shared-db, nothing to copy, or
        services that are not this run's)."""
        from ..state.reset import resettable
        from ..state.workerenv import plan

        runtime, stack = self.runtime, self.runtime.stack
        if stack is None or runtime.error is not None:
            return {}
        self.workers = len(slots)
        servers = [n for n, s in stack.services.items() if resettable(s)]
        if runtime.settings.shared_db or not servers:
            return {}
        if not runtime.owns_services:
            runtime.notices.append(
                f"xdist workers share {', '.join(servers)}: the {runtime.backend_class.name} "
                "backend attaches to services someone else runs, and copies of their "
                "databases are not this run's to make"
            )
            return {}
        self.plan = plan(stack, slots, environ)
        envs = {slot: self.plan.environ(slot, environ, stack) for slot in slots}
        self.exported = sorted({name for env in envs.values() for name in env})
        return {
            slot: {**env, SLOT_VAR: slot, VARS_VAR: ",".join(sorted(env))}
            for slot, env in envs.items()
        }

    def _shared(self) -> list[str]:
        """What --pyairtable-shared-db did (or that it had nothing to do)."""
        from ..state.reset import resettable

        stack = self.runtime.stack if self.runtime.loaded else None
        if stack is None or not self.runtime.settings.shared_db:
            return []
        servers = [n for n, s in stack.services.items() if resettable(s)]
        if not servers:
            return [
                "--pyairtable-shared-db: the stack has no PostgreSQL or Redis service; "
                "nothing to share or copy, the run went on as without it"
            ]
        if not self.workers:
            return []  # no xdist: one test process, nothing to share
        return [
            f"{name}: 1 shared database for {self.workers} xdist workers (--pyairtable-shared-db)"
            for name in servers
        ]

    # -- a worker's copies -------------------------------------------------------------

    def ensure(self, holder: str, slot: str, *, main_thread: bool) -> None:
        """The copies for ``slot`` exist and are ``holder``'s (made when it first asks)."""
        if self.plan is None or slot not in self.plan.slots:
            return
        with self._lock:
            if slot in self._errors:
                raise self._errors[slot].fresh()
            current = self.slots.get(slot)
            if current is not None and current.holder == holder:
                return
            # recorded before it is filled: what is made before a failure is dropped too
            copies = self.slots[slot] = Copies(holder)
            try:
                self._make(copies, slot, fresh=current is None)
            except PyAirtableError as exc:
                self._errors[slot] = exc
                raise

    def _make(self, copies: Copies, slot: str, *, fresh: bool) -> None:
        from ..state.pgcopies import make, mark, sweep
        from ..state.pgsnap import PostgresSnapshot
        from ..state.workerenv import copy_name

        assert self.plan is not None
        self.owner.settle(main_thread=False)
        specs = self.owner.ready_specs()
        names = [n for n, s in self.plan.servers.items() if n in specs and s.databases]
        resets = self.owner.resets()
        self.owner.take([n for n in names if n not in resets.snapshots], specs)
        for name in names:
            if name in resets.errors:
                raise resets.errors[name].fresh()
            server, snapshot = self.plan.servers[name], resets.snapshots[name]
            if isinstance(snapshot, PostgresSnapshot):
                if name not in self._swept:
                    self._swept.add(name)
                    sweep(snapshot)
                made = copies.postgres.setdefault(name, {})
                for db in snapshot.databases:
                    if db.name in server.databases:
                        start = time.perf_counter()
                        copy = made[db.name] = copy_name(db.name, slot)
                        make(snapshot, db, copy, mark(self.runtime.run_id, slot, db.name))
                        self.seconds.append(time.perf_counter() - start)
            else:
                numbers = {int(d): server.numbers[(slot, d)] for d in server.databases}
                copies.redis[name] = numbers
                snapshot.copy_into(numbers, fresh=fresh)

    def handle(self, slot: str, handle: Handle) -> Handle:
        """``handle`` as worker ``slot`` sees it: its URL names the worker's copy."""
        copies = self.slots.get(slot)
        server = self.plan.servers.get(handle.name) if self.plan is not None else None
        if copies is None or server is None or self.plan is None:
            return handle
        details = dict(handle.details)
        if handle.name in copies.postgres:
            made = copies.postgres[handle.name]
            details.update(worker=slot, databases=dict(made))
        elif handle.name in copies.redis:
            numbers = copies.redis[handle.name]
            details.update(worker=slot, databases={str(k): v for k, v in numbers.items()})
        elif handle.name in self.plan.shared:
            details.update(worker=slot, key_prefix=f"{slot}:")  # one database for all
            return dataclasses.replace(handle, details=details)
        else:
            return handle
        url = self.plan.url_for(handle.name, handle.url, slot)
        return dataclasses.replace(handle, url=url, details=details)

    def restore(self, slot: str, names: Iterable[str], own_pids: list[int]) -> None:
        """Put ``slot``'s copies of ``names`` back to the snapshot (a reset)."""
        from ..state.pgrestore import restore_database
        from ..state.pgsessions import Owners
        from ..state.pgsnap import PostgresSnapshot

        copies = self.slots.get(slot)
        if copies is None:
            return
        resets, owners = self.owner.resets(), Owners(own_pids)
        for name in names:
            snapshot = resets.snapshots.get(name)
            if isinstance(snapshot, PostgresSnapshot):
                by_name = {db.name: db for db in snapshot.databases}
                for db, copy in copies.postgres.get(name, {}).items():
                    restore_database(snapshot, by_name[db], copy, owners, copy=True)
            elif snapshot is not None and name in copies.redis:
                snapshot.copy_into(copies.redis[name], fresh=False)

    # -- the end -----------------------------------------------------------------------

    def drop(self) -> None:
        """Drop every copy this run made (its workers are gone), and say what there was."""
        from ..state.pgcopies import drop
        from ..state.pgsnap import PostgresSnapshot

        if self.plan is None or not self.slots or self._dropped:
            return
        self._dropped = True
        resets = self.owner.resets()
        for name in self.plan.servers:
            snapshot = resets.snapshots.get(name)
            made, numbers = self._made(name)
            try:
                if isinstance(snapshot, PostgresSnapshot):
                    drop(snapshot, made, self.runtime.run_id)
                elif snapshot is not None:
                    snapshot.flush(numbers)
            except Exception as exc:  # the stack stops or is kept next, whatever happens here
                self.runtime.notices.append(
                    f"{name}: could not drop the xdist workers' databases: {exc}"
                )

    def _made(self, service: str) -> tuple[list[str], list[int]]:
        """The PostgreSQL copies and Redis databases made of ``service``, for every slot."""
        made = {
            c for copies in self.slots.values() for c in copies.postgres.get(service, {}).values()
        }
        numbers = {
            n for copies in self.slots.values() for n in copies.redis.get(service, {}).values()
        }
        return sorted(made), sorted(numbers)

    def summary(self) -> list[str]:
        if self.plan is None:
            return self._shared()
        lines = []
        workers = len(self.slots)
        for name, server in self.plan.servers.items():
            made, numbers = self._made(name)
            if made:
                shared = ", ".join(sorted(server.databases))
                lines.append(
                    f"{name}: {len(server.databases)} shared + {len(made)} worker databases "
                    f"({', '.join(made)}); the stack's services use the shared {shared}"
                )
            elif numbers:
                lines.append(
                    f"{name}: {len(server.databases)} shared + {len(numbers)} worker databases "
                    f"(Redis databases {', '.join(map(str, numbers))})"
                )
            elif name in self.plan.shared and workers:
                lines.append(
                    f"{name}: its {server.total} logical database(s) are too few for a copy per "
                    f"worker: the {workers} workers share them (each handle's "
                    "details['key_prefix'] tells a worker's keys apart). Fix: `--databases 64` "
                    "in its command"
                )
        if self.seconds:
            lines.append(
                f"worker databases copied in {statistics.median(self.seconds) * 1000:.0f} ms "
                f"each (median of {len(self.seconds)}); the workers' environment names "
                f"them in: {', '.join(self.exported) or 'no variable'}"
            )
        return lines
