"""Jobs from a snapshot: a cold boot restores the databases a job wrote, instead of
running it, when nothing it depends on changed (which jobs qualify, what their
snapshots hold and their keys: jobplan.py; where snapshots are kept: jobstore.py; how a
server's data is saved and seeded: the backend's ``server_data``).

At a boot, each database server is decided once, just before it launches: it starts
from the snapshot of the latest job of the run that writes it and has one (the backend
puts that data in place: a copy, as the fresh cluster's would be), or empty. At a job's
turn, a job whose every server started from its snapshot (or a later job's) is
completed at once and says so; any other job runs. After a job that is snapshotted ran
and exited 0, while its dependents still wait, each of its servers' data is saved to a
staging directory (on tmpfs), and written to the store in the background. A failed job
is never saved; a job whose inputs changed has a new key, so it runs and is saved anew.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import markers
from ..backends.base import Running
from ..engine.readiness import jobs
from ..engine.snapshots import NoSnapshots
from ..model.spec import ServiceSpec, StackSpec
from ..support.errors import ConfigError, PrerequisiteError, PyAirtableError
from .jobinputs import Digest, InputsProblem
from .jobplan import FORMAT, Plan, choose, covers, plan
from .jobstore import Store

if TYPE_CHECKING:
    from ..backends.base import Backend, ServerData

SHM = Path("/dev/shm")


class JobSnapshots(NoSnapshots):
    """One boot's job snapshots (see engine/snapshots.py for when each is asked)."""

    def __init__(
        self,
        stack: StackSpec,
        backend: Backend,
        run_id: str,
        store: Store | None = None,
        inputs: Mapping[str, Digest | InputsProblem] | None = None,
    ) -> None:
        super().__init__()
        self.stack = stack
        self.inputs = inputs  # the jobs' digests, taken at the boot (else at the plan)
        self.backend = backend
        self.run_id = run_id
        self.store = store or Store(stack.compose_file)
        self._lock = threading.Lock()
        self._plan: Plan | None = None
        self._data: dict[str, ServerData] = {}
        self._hits: dict[str, Path] = {}  # job -> its snapshot in the store
        self._decided: dict[str, str | None] = {}  # server -> the job it started from
        self._seconds: dict[str, float] = {}  # job -> time its data took to put in place
        self._staging: Path | None = None
        self._writers: list[threading.Thread] = []

    def _planned(self) -> Plan:
        """The plan, made at the first question (under the lock)."""
        if self._plan is not None:
            return self._plan
        identities = {}
        for name, spec in self.stack.services.items():
            if not spec.image_kind:
                continue
            try:
                data = self.backend.server_data(spec)
            except PyAirtableError:  # e.g. no server binary: its launch says so
                data = None
            if data is not None:
                self._data[name] = data
                identities[name] = data.identity
        found = self._plan = plan(
            self.stack, jobs(self.stack), identities, self.backend.name, self.inputs
        )
        for job in found.jobs.values():
            if job.why_not:
                why = f"'{job.name}' runs at every boot: {job.why_not}"
                self.notices.append(f"job snapshots: {why}")
            elif job.snapshotted:
                entry = self.store.find(job.key)
                held = self.store.meta(entry).get("services", []) if entry else []
                if entry is not None and set(job.servers) <= set(held):
                    self._hits[job.name] = entry
        return found

    # -- the boot ------------------------------------------------------------------

    def seed(self, spec: ServiceSpec, wanted: Collection[str]) -> None:
        with self._lock:
            found = self._planned()
            if spec.name not in found.identities or spec.name in self._decided:
                return
            hits = [j for j in self._hits if j in wanted]
            job = choose(found, hits, self._decided).get(spec.name)
            self._decided[spec.name] = job
            if job is None:
                return
            entry = self._hits[job]
        began = time.monotonic()
        try:
            self._data[spec.name].seed(entry / spec.name)
        except (OSError, PyAirtableError) as exc:
            self.store.discard(entry.name)
            raise PrerequisiteError(
                f"service '{spec.name}': it could not start from the snapshot of job "
                f"'{job}' ({exc}); that snapshot is removed, so the next run runs the job. "
                "Fix: run again (or with --pyairtable-no-snapshots)"
            ) from None
        with self._lock:
            self._seconds[job] = self._seconds.get(job, 0.0) + time.monotonic() - began

    def restored(self, name: str) -> str | None:
        with self._lock:
            found = self._planned()
            job = found.jobs.get(name)
            if job is None:
                return None
            if job.error:
                raise ConfigError(job.error)
            if not covers(found, name, self._decided):
                if any(self._decided.get(s) in ({name} | job.later) for s in job.servers):
                    raise PyAirtableError(  # never run a job over part of its own result
                        f"some of its servers started from its snapshot, not all "
                        f"({', '.join(job.servers)}). Fix: run with --pyairtable-no-snapshots "
                        "and report this"
                    )
                return None
            sources = {self._decided[s] for s in job.servers}
            seconds = sum(self._seconds.get(s or "", 0.0) for s in sources)
        others = ", ".join(sorted(str(s) for s in sources))
        whose = "" if sources == {name} else f", in that of '{others}'"
        note = f"restored from snapshot (inputs unchanged{whose}), {seconds:.2f} s"
        self.notices.append(f"{name}: {note}")
        return note

    def save(self, name: str, running: Mapping[str, Running]) -> str | None:
        with self._lock:
            job = self._planned().jobs.get(name)
            if job is None or not job.snapshotted or self.store.find(job.key) is not None:
                return None  # not snapshotted, or saved already (by an earlier run)
        stopped = [s for s in job.servers if s not in running or running[s].poll() is not None]
        if stopped:
            self.notices.append(
                f"job snapshots: '{name}' was not snapshotted: {', '.join(stopped)} is not running"
            )
            return None
        began = time.monotonic()
        stage = self._stage() / job.key
        try:
            stage.mkdir(mode=0o700)
            for server in job.servers:
                (stage / server).mkdir(mode=0o700)
                self._data[server].save(running[server], stage / server)
        except Exception as exc:  # the job succeeded: a snapshot is only a saving
            shutil.rmtree(stage, ignore_errors=True)
            self.notices.append(f"job snapshots: '{name}' was not snapshotted: {exc}")
            return None
        seconds = time.monotonic() - began
        meta = {
            "format": FORMAT,
            "job": name,
            "services": list(job.servers),
            "inputs": {"files": job.inputs[0], "bytes": job.inputs[1]},
        }
        writer = threading.Thread(
            target=self._commit,
            args=(name, job.key, stage, meta),
            name=f"pyairtable-snapshot-{name}",
        )
        self._writers.append(writer)
        writer.start()
        return f"snapshot taken in {seconds:.2f} s"

    def _stage(self) -> Path:
        """This run's staging directory: on tmpfs where there is one (a copy there costs
        the dependents' wait least), marked as the run's for the clean-up of killed runs."""
        with self._lock:
            if self._staging is None:
                tmpfs = os.environ.get("PYAIRTABLE_TMPFS", "1") not in ("0", "no")
                base = SHM if tmpfs and os.access(SHM, os.W_OK) else markers.temp_base()
                prefix = f"pyairtable-snapshot-{self.run_id}-"
                self._staging = markers.make_dir(base, prefix, self.run_id, "snapshot")
                self._staging.chmod(0o700)
            return self._staging

    def _commit(self, name: str, key: str, stage: Path, meta: dict[str, Any]) -> None:
        try:
            self.store.commit(key, stage, meta)
        except OSError as exc:
            self.notices.append(f"job snapshots: '{name}''s snapshot could not be kept: {exc}")
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def close(self) -> None:
        for writer in self._writers:
            writer.join()
        self._writers.clear()
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
