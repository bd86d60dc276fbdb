"""What the process owning the stack does for the tests, wherever they run: handles,
leases, faults and resets, each for a holder.

Without xdist the pytest process is the only holder (``LocalAccess``); under xdist
the controller owns the stack and each worker is a holder through its connection
(sharing.py). One ``StackOwner`` serves both, so a fault or a reset behaves the same
with and without ``-n``: it runs here, under the holder's exclusive lease (lease.py),
and a holder that ends its test or goes away has its faults healed, then its lease
released.

Faults on a kept stack the run attached to are refused: that stack is shared with
whatever else attached to it (another terminal's run, a developer's browser), which
this run's lease cannot hold back; a service restarted here would be this run's
process, outside the record `pyairtable down` stops; and a failed heal would leave a
developer's stack broken. Resets of a kept stack are allowed (its snapshot is kept with
it). Neither touches the external backend's services: they are not ours.

(Just over 350 lines: handles, leases, faults and resets share the holders' table and
its lock; the local holder is the same owner seen without xdist.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from ..support.errors import PyAirtableError
from .isolation import WorkerIsolation
from .lease import EXCLUSIVE, LeaseTable

if TYPE_CHECKING:
    from ..engine.faults import FaultInjector
    from ..engine.handle import Handle
    from ..model.spec import ServiceSpec
    from ..state.reset import Resets
    from .runtime import Runtime

MAIN = "main"  # the holder that is the owner's own process


class StackOwner:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.leases = LeaseTable(runtime.settings.lease_timeout)
        self._faults: dict[str, FaultInjector] = {}
        self._wanted: set[str] = set()  # services to snapshot; "*": every one that can be
        self._resets: Resets | None = None
        self._lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._snapshotted = False
        self._refusal: PyAirtableError | None = None  # why faults cannot be injected
        self.closing = False  # the run is ending (set before workers' connections close)
        self.isolation = WorkerIsolation(self)

    # -- handles -------------------------------------------------------------------

    def handle(
        self,
        name: str,
        needed: Iterable[str],
        resets: Iterable[str],
        *,
        main_thread: bool,
        holder: str = MAIN,
        slot: str = "",
    ) -> Handle:
        """``name``'s handle; when the run resets services, only once the whole stack
        is up and snapshotted, so that every test starts from the same data. An xdist
        worker's (``slot``) names its own databases, made at its first request."""
        self._want(resets)
        handle = self.runtime.handle(name, needed, main_thread=main_thread)
        self._snapshot(main_thread)
        if slot:
            self.isolation.ensure(holder, slot, main_thread=main_thread)
            handle = self.isolation.handle(slot, handle)
        return handle

    def stack_handles(self) -> dict[str, Handle]:
        handles = self.runtime.stack_handles()
        self._snapshot(main_thread=True)
        return handles

    def _want(self, names: Iterable[str]) -> None:
        with self._lock:
            self._wanted.update(names)

    # -- leases --------------------------------------------------------------------

    def lease(
        self, holder: str, mode: str, label: str, gone: Callable[[], bool] | None = None
    ) -> None:
        """``shared``/``exclusive`` (at least), ``downgrade``, or ``none`` (the test ended)."""
        if mode == "none":
            self.end(holder)
        elif mode == "downgrade":
            self.leases.downgrade(holder)
        else:
            self.leases.acquire(holder, mode, label, gone=gone)

    def end(self, holder: str) -> None:
        """The holder's test is over, or the holder is gone: heal, then let others in
        (no heal once the run is ending: the stack is about to stop)."""
        try:
            if self.closing:
                self._faults.pop(holder, None)
            else:
                self.heal(holder)
        finally:
            self.leases.release(holder)

    def drop(self, holder: str) -> None:
        """A holder went away (a crashed worker): as ``end``, on a thread nobody waits
        on, so a failed heal becomes a line of the run's summary."""
        try:
            self.end(holder)
        except Exception as exc:
            text = str(exc) if isinstance(exc, PyAirtableError) else repr(exc)
            self.runtime.notices.append(f"healing after a worker went away failed: {text}")

    def _require_alone(self, holder: str, what: str) -> None:
        if self.leases.mode(holder) != EXCLUSIVE:
            raise PyAirtableError(
                f"pyairtable: {what} needs the stack alone, and this test does not hold it "
                "(an internal error: the plugin takes it before the test)."
            )

    # -- faults --------------------------------------------------------------------

    def fault(self, holder: str, action: str, service: str) -> Handle | None:
        """``begin``, one of faults.ACTIONS on ``service``, or ``heal``."""
        if action == "begin":
            self._begin_faults(holder)
            return None
        if action == "heal":
            self.heal(holder)
            return None
        injector = self._faults.get(holder)
        if injector is None:
            raise PyAirtableError("pyairtable: a fault outside the pyairtable_faults fixture")
        return injector.apply(action, service)

    def _begin_faults(self, holder: str) -> None:
        from ..engine.faults import FaultInjector

        self._require_alone(holder, "pyairtable_faults")
        if self._refusal is None and self.runtime.attached() is not None:
            self._refusal = PyAirtableError(
                f"pyairtable_faults: this run attached to the kept stack in "
                f"{self.runtime.record_path}, and faults are not injected into a kept stack "
                "(other runs and tools may use it; a restart here would leave a service "
                "outside its record). Fix: `pyairtable down`, then run the fault tests on "
                "a stack of their own (CI never keeps one)."
            )
        if self._refusal is None and not self.runtime.owns_services:
            self._refusal = PyAirtableError(
                f"pyairtable_faults: the {self.runtime.backend_class.name} backend attaches to "
                "services someone else runs; they are not this run's to break. Fix: run "
                "fault tests with a backend that starts its services (local or compose)."
            )
        if self._refusal is not None:
            raise self._refusal.fresh()  # one error: reported in full once
        self._faults.setdefault(holder, FaultInjector(self.runtime.orchestrator()))

    def heal(self, holder: str) -> None:
        injector = self._faults.pop(holder, None)
        if injector is not None:
            for line in injector.heal():  # what the heal had to restart, and why
                self.runtime.notices.append(f"heal: {line}")
                self.runtime.events.lines.put(f"pyairtable: heal: {line}")

    # -- resets --------------------------------------------------------------------

    def reset(
        self,
        holder: str,
        names: list[str] | None,
        needed: Iterable[str],
        resets: Iterable[str],
        *,
        main_thread: bool,
        slot: str = "",
        pid: int | None = None,
    ) -> list[str]:
        """Restore ``names`` (None: every service that can be), under the exclusive lease.
        ``needed``: the holder's closure, started with them (the snapshot waits for all
        of it, migration jobs included). ``pid``: the process running the test, whose
        own database sessions the restore keeps; ``slot``: an xdist worker's, whose own
        copies are restored too."""
        from ..state.reset import choose

        self._require_alone(holder, "a reset")
        if self.runtime.error is not None:
            raise self.runtime.error.fresh()  # no stack to reset: the compose file's error
        self._refuse_foreign()
        self._want(resets)
        if names is not None:  # a name that is wrong, before starting anything
            stack = self.runtime.stack
            choose(names, dict(stack.services) if stack else {}, self.runtime.topology())
        for name in names or ():
            self.runtime.handle(name, [*needed, *(names or ())], main_thread=main_thread)
        if names is None and self.runtime.attached() is None:
            self.runtime.orchestrator().start(sorted({*self.runtime.needed, *needed}))
        self._snapshot(main_thread)
        specs = self.ready_specs()
        chosen = choose(names, specs, self.runtime.topology())
        resets_ = self.resets()
        late = [n for n in chosen if n not in resets_.snapshots and n not in resets_.errors]
        if late:
            self.runtime.notices.append(
                f"reset: snapshot of {', '.join(late)} taken at its first reset, not at "
                "start-up (the tests that reset it were not known at collection)"
            )
            self.take(late, specs)
        own = [pid] if pid is not None else []
        done = resets_.restore(chosen, own)
        if slot:
            self.isolation.ensure(holder, slot, main_thread=main_thread)
            self.isolation.restore(slot, chosen, own)
        return done

    def _refuse_foreign(self) -> None:
        if not self.runtime.owns_services:
            kept = self.runtime.attached()
            name = kept.backend if kept is not None else self.runtime.backend_class.name
            raise PyAirtableError(
                f"reset: the {name} backend attaches to services someone else runs; a "
                "reset would replace their data. Fix: reset only stacks this run (or a "
                "kept stack) started: the local or compose backend."
            )

    def _snapshot(self, main_thread: bool) -> None:
        """Once, when the run resets anything: wait until every started service is up
        (or failed), then snapshot the wanted ones."""
        from ..state.reset import ALL, resettable

        with self._snapshot_lock:  # other threads' handles wait for it too
            with self._lock:
                wanted = set(self._wanted)
            if self._snapshotted or not wanted or not self.runtime.owns_services:
                return  # (the external backend's services are refused at the reset)
            self.settle(main_thread)
            self._snapshotted = True
            specs = self.ready_specs()
            names = [n for n, s in specs.items() if resettable(s)]
            self.take([n for n in names if ALL in wanted or n in wanted], specs)

    def settle(self, main_thread: bool) -> None:
        """Wait until every started service is up, done (a job) or failed."""
        kept = self.runtime.attached()
        orch = self.runtime.orch if kept is None else None
        if orch is not None:
            orch.expect(list(orch.runs))
            for name in list(orch.runs):
                while not orch.settle(name, 0.1):
                    if main_thread:
                        self.runtime.flush()

    def take(self, names: list[str], specs: dict[str, ServiceSpec]) -> None:
        from ..state.reset import snapshot_file

        resets = self.resets()
        kept = self.runtime.attached()
        store = snapshot_file(self.runtime.record_path) if kept is not None else None
        resets.take(specs, names, store)
        self.runtime.notices.extend(resets.notices)
        resets.notices.clear()

    def ready_specs(self) -> dict[str, ServiceSpec]:
        from ..engine.run import State

        kept = self.runtime.attached()
        if kept is not None:
            return {n: s.spec for n, s in kept.services.items() if not s.completed}
        orch = self.runtime.orch
        if orch is None:
            return {}
        return {n: r.spec for n, r in orch.runs.items() if r.state is State.READY}

    def resets(self) -> Resets:
        from ..state.reset import Resets
        from .kept import fingerprint

        if self._resets is None:
            kept = self.runtime.attached()
            if kept is not None:
                key = f"{kept.fingerprint}:{kept.run_id}"
            else:
                stack = self.runtime.stack
                assert stack is not None
                key = f"{fingerprint(stack, self.runtime.backend_class.name)}:{self.runtime.run_id}"
            self._resets = Resets(key)
        return self._resets

    def test_logs(
        self, marks: Mapping[str, int], lines: int, moment: float | None = None
    ) -> dict[str, str]:
        """What each service logged since its mark, masked (testlogs.read_windows)."""
        from .testlogs import read_windows

        return read_windows(self.runtime, marks, lines, moment)

    # -- the end -------------------------------------------------------------------

    def stop(self) -> None:
        """The end of the run: snapshots go with a stack that stops, stay with one that
        is kept (Redis's written beside its record), then the runtime stops or keeps."""
        runtime, resets = self.runtime, self._resets
        orch = runtime.orch
        self.isolation.drop()  # a kept stack keeps only the stack's own databases
        if resets is not None:
            resets.join()
            if (
                runtime.kept is None
                and not runtime.keeping
                and orch is not None
                and not orch.stopped
            ):
                resets.discard()
                runtime.notices.extend(resets.notices)
        kept = runtime.stop()
        if resets is not None and kept is not None:
            # imported here: a run without resets (most) does not pay for them at its end
            from ..state.reset import snapshot_file

            resets.save(snapshot_file(runtime.record_path))


class LocalAccess:
    """The owner's services in its own process (no xdist): StackClient's calls, direct."""

    def __init__(self, owner: StackOwner) -> None:
        self.owner = owner
        self.resets: list[str] = []  # what the collected tests will reset

    def handle(self, service: str, needed: list[str], nodeid: str) -> Handle:
        return self.owner.handle(service, needed, self.resets, main_thread=True)

    def lease(self, mode: str, label: str) -> None:
        self.owner.lease(MAIN, mode, label)

    def fault(self, action: str, service: str, nodeid: str = "") -> Handle | None:
        return self.owner.fault(MAIN, action, service)

    def reset(self, services: list[str] | None, needed: list[str]) -> list[str]:
        return self.owner.reset(
            MAIN, services, needed, self.resets, main_thread=True, pid=os.getpid()
        )

    def test_logs(
        self, marks: Mapping[str, int], lines: int, moment: float | None = None
    ) -> dict[str, str]:
        return self.owner.test_logs(marks, lines, moment)

    def close(self) -> None:
        """Nothing to close: the owner is this process."""
