"""A kept stack: left running on purpose, recorded, attached to by later runs, and
stopped by `pyairtable down`, all from its record.

The record, ``.pyairtable/<compose file>.json`` beside the compose file (mode 0600: it
holds DSNs with passwords), holds what a later process needs without reading the
compose file again (whose variables the shell may no longer have): each service's
spec, handle and whether it is a completed job, what to redact, and the backend's own
state (local: process groups with their start times, and directories; compose: the
project and its container ids; external: nothing to stop). A run from the same compose
file, env and profiles (the fingerprint) attaches when every service is still up and
its jobs' declared inputs are unchanged, and never stops it. A record proves its stack
only in the directory it was written in (bound.py): a copy of the project never acts on
the original's stack.

(Just over 350 lines: the record's fields and the checks a run makes of them before it
attaches read best together.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends.base import backend_class
from ..backends.markers import record_path
from ..backends.procfs import is_running, proc_start_time
from ..engine.codec import from_json, to_json
from ..engine.events import Listener
from ..engine.handle import Handle, handle_from_json, handle_to_json
from ..engine.orchestrator import Orchestrator, State
from ..engine.readiness import ProbeFactory
from ..engine.snapshots import adopted
from ..model.spec import ServiceSpec, StackSpec
from ..model.topology import own_dir
from ..probes.checks import check_once
from ..state.jobinputs import inputs_changed
from ..support.errors import KeepError, PyAirtableError
from ..support.files import read_text, write_json
from ..support.redact import Redactor, dataclass_repr
from .bound import ForeignRecord, bound_to, check_bound

__all__ = [
    "Foreground",
    "ForeignRecord",
    "KeptService",
    "KeptStack",
    "attachable",
    "check_record_free",
    "fingerprint",
    "record_path",
]
RECORD_VERSION = 4  # 3: the holding `up` process is 'foreground'; 4: bound to its directory
GONE = "is no longer running"  # a service's problem when nothing of it runs


def check_record_free(path: Path, run_id: str) -> None:
    """Raise KeepError when the record at ``path`` names another stack that still runs
    (replaced, it could not be found or stopped any more); one of which nothing runs is
    released instead; a copy's record of the original's stack is replaced."""
    try:
        previous = KeptStack.load(path)  # KeepError for a record it cannot read
    except ForeignRecord as exc:
        if exc.copy:
            return
        raise KeepError(f"not kept: {exc}") from None
    if previous is not None and previous.run_id != run_id and not previous.release_if_gone(path):
        raise KeepError(
            f"not kept: {path} records another stack that still runs. "
            "Fix: `pyairtable down` stops it; then keep this one."
        )


def recorded_ports(path: Path) -> dict[str, int]:
    """The free ports the stack recorded at ``path`` was booted with; {} when none."""
    try:
        kept = KeptStack.load(path)
    except KeepError:
        return {}
    return dict(kept.ports) if kept is not None else {}


def attachable(
    path: Path, stack: StackSpec, backend: str, probe_factory: ProbeFactory | None = None
) -> tuple[KeptStack | None, str | None]:
    """The kept stack recorded at ``path`` when a run of ``stack`` may attach to it; else
    None, and why not for the run's summary (None when nothing is recorded). A recorded
    stack of which nothing runs any more is removed."""
    try:
        kept = KeptStack.load(path)
        reason = None if kept is None else kept.why_not_reusable(stack, backend, probe_factory)
    except KeepError as exc:
        return None, f"not attaching to a kept stack: {exc}"
    if kept is None:
        return None, None
    if reason is not None and kept.release_if_gone(path):
        return None, f"the kept stack in {path} had stopped ({reason}): removed it"
    if reason is not None:
        return None, (
            f"not attaching to the kept stack in {path}: {reason}; this run starts its own "
            "(`pyairtable down` stops the kept one)"
        )
    return kept, None


def fingerprint(stack: StackSpec, backend: str) -> str:
    """Changes when anything that shapes the stack does: file, env, profiles, backend
    (a changed job definition too: every service's whole spec is in it)."""
    # From the specs' JSON, not their reprs: a repr masks the secrets, and a changed
    # password must change the fingerprint.
    services = sorted((name, to_json(svc)) for name, svc in stack.services.items())
    text = json.dumps([backend, stack.profiles, services], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Foreground:
    """The foreground `pyairtable up` (or `pytest --pyairtable-up`) that holds the stack
    until Ctrl-C; a stack kept detached has none."""

    pid: int
    ticks: int | None

    @classmethod
    def me(cls) -> Foreground:
        return cls(os.getpid(), proc_start_time(os.getpid()))

    @property
    def alive(self) -> bool:
        return is_running(self.pid, self.ticks)


@dataclass
class KeptService:
    spec: ServiceSpec
    handle: Handle
    completed: bool  # a one-shot job that exited 0: it need not run any more
    started: float  # wall clock, for uptime
    state: dict[str, Any]  # its backend's own record (Running.kept_state)


@dataclass
class KeptStack:
    fingerprint: str
    run_id: str
    backend: str
    backend_state: dict[str, Any]
    compose_file: str
    services: dict[str, KeptService]
    secrets: list[str]
    foreground: Foreground | None = None
    # --pyairtable-free-ports: the ports chosen for the stack's variables, for the runs
    # that attach (they load the compose file with the same values)
    ports: dict[str, int] = dataclasses.field(default_factory=dict)
    version: int = RECORD_VERSION
    # the stack's names and paths, which masking never touches (a record without them,
    # from an older run, masks its secrets everywhere)
    identifiers: dict[str, str] = dataclasses.field(default_factory=dict)
    # the directory the record was written in (an Owner), set by ``save``
    project: dict[str, Any] = dataclasses.field(default_factory=dict)
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)  # job -> digest (jobinputs)

    def __repr__(self) -> str:
        return dataclass_repr(self, self.secrets, self.identifiers)

    def redactor(self) -> Redactor:
        return Redactor(self.secrets, self.identifiers)

    @classmethod
    def from_orchestrator(
        cls,
        orch: Orchestrator,
        run_id: str,
        foreground: Foreground | None = None,
        ports: dict[str, int] | None = None,
    ) -> KeptStack:
        """Describe a stack that is up; raises KeepError where its backend cannot keep it."""
        down = [n for n, r in orch.runs.items() if r.state not in (State.READY, State.COMPLETED)]
        if down or not orch.runs:
            raise KeepError(
                f"not kept: {', '.join(down) or 'nothing'} did not come up; it was stopped."
            )
        services = {}
        now, clock = time.time(), orch.now()
        for name, run in orch.runs.items():
            assert run.running is not None
            # its own start (the last one), not the record's: uptime is the service's
            launched = run.restarts[-1][0] if run.restarts else run.launched_at
            services[name] = KeptService(
                spec=run.spec,
                handle=orch.handle(name),
                completed=run.state is State.COMPLETED,
                started=now - (clock - launched) if launched is not None else now,
                state=run.running.kept_state(),
            )
        return cls(
            fingerprint=fingerprint(orch.stack, orch.backend.name),
            run_id=run_id,
            backend=orch.backend.name,
            backend_state=orch.backend.kept_state(),
            compose_file=str(orch.stack.compose_file),
            services=services,
            secrets=orch.redact.secrets,
            identifiers=orch.redact.identifiers,
            foreground=foreground,
            ports=dict(ports or {}),
        )

    # -- the file ------------------------------------------------------------------

    def save(self, path: Path) -> None:
        own_dir(path.parent)
        self.project = bound_to(path)
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["foreground"] = dataclasses.asdict(self.foreground) if self.foreground else None
        data["services"] = {
            name: {**to_json(svc), "handle": handle_to_json(svc.handle)}
            for name, svc in self.services.items()
        }
        write_json(path, data, indent=2)  # a reader sees the old record or the new, never half

    @classmethod
    def load(cls, path: Path) -> KeptStack | None:
        """The record at ``path``; None when there is none. Raises KeepError when there is
        one this version cannot use."""
        try:
            data: dict[str, Any] = json.loads(read_text(path))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise KeepError(f"the kept stack's record {path} is unreadable: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
            raise KeepError(
                f"the kept stack's record {path} was written by another version of "
                "pytest-pyairtable. Fix: stop its processes (they carry PYAIRTABLE_RUN_ID="
                f"{data.get('run_id', '?') if isinstance(data, dict) else '?'} in their "
                "environment), then delete the record."
            )
        check_bound(path, data)
        try:
            services = {
                name: KeptService(
                    spec=from_json(ServiceSpec, svc["spec"]),
                    handle=handle_from_json(svc["handle"]),
                    completed=bool(svc["completed"]),
                    started=float(svc["started"]),
                    state=dict(svc["state"]),
                )
                for name, svc in data["services"].items()
            }
            up = Foreground(**data["foreground"]) if data.get("foreground") else None
            return cls(**{**data, "services": services, "foreground": up})
        except (KeyError, TypeError, ValueError) as exc:
            raise KeepError(f"the kept stack's record {path} is damaged: {exc!r}") from None

    # -- its services ----------------------------------------------------------------

    def stack(self) -> StackSpec:
        return StackSpec(
            compose_file=Path(self.compose_file),
            services={n: s.spec for n, s in self.services.items()},
        )

    def orchestrator(
        self,
        listener: Listener | None = None,
        *,
        volumes: bool = False,
        probe_factory: ProbeFactory | None = None,
    ) -> Orchestrator:
        """An orchestrator that owns the kept services again: to probe or to stop them
        (with everything a run's own stop does: order, data safety, confirmation);
        ``volumes``: the stop removes what the stack wrote too."""
        backend = backend_class(self.backend).reattach(
            self.backend_state, self.run_id, volumes=volumes
        )
        orch = Orchestrator(
            self.stack(),
            backend,
            listener=listener,
            probe_factory=probe_factory,
            redact=self.redactor(),
        )
        for name, svc in self.services.items():
            orch.adopt(name, adopted(backend, svc.spec, svc.state), completed=svc.completed)
        return orch

    def problems(self, orch: Orchestrator) -> dict[str, str | None]:
        """Per service: None while it is up (a completed job counts), else what is wrong.
        Probed all at once: attaching should cost one probe's time, not the sum of ten."""

        def check(name: str) -> str | None:
            run = orch.runs[name]
            if run.state is State.COMPLETED:
                return None
            assert run.running is not None
            if run.running.poll() is not None:
                return GONE
            probe, _ = orch.gate.probe_for(run.spec, run.running, 1.0)
            failure = check_once(probe)
            if failure is not None:
                return f"does not pass its probe ({failure})"
            held = orch.backend.identity_problem(run.spec, run.running)  # ours, not another's
            return None if held is None else f"is not what answers its probe ({held})"

        names = list(orch.runs)
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            return dict(zip(names, pool.map(check, names), strict=True))

    def why_not_reusable(
        self, stack: StackSpec, backend: str, probe_factory: ProbeFactory | None = None
    ) -> str | None:
        """None when a run may attach; else the reason, for the user. Its services are
        probed as a run's own start would probe them (``probe_factory``: the hook's)."""
        if self.fingerprint != fingerprint(stack, backend):
            free = " (or with --pyairtable-free-ports: attach with it too)" if self.ports else ""
            return f"it was booted from a different compose file, env or profiles{free}"
        if changed := inputs_changed(self.inputs, stack):  # its data: the old inputs' result
            return changed
        try:
            orch = self.orchestrator(probe_factory=probe_factory)
        except PyAirtableError as exc:
            return str(exc)
        for name, problem in self.problems(orch).items():
            if problem == GONE:  # the rest runs: bringing it back is one command
                return f"its service '{name}' {problem} (`pyairtable restart {name}` starts it)"
            if problem is not None:
                return f"its service '{name}' {problem}"
        return None

    def release_if_gone(self, path: Path) -> bool:
        """When nothing of the stack runs any more (its services died, the machine
        rebooted), remove what is left of it and its record; True if it did."""
        if self.foreground is not None and self.foreground.alive:
            return False
        try:
            orch = self.orchestrator()
        except PyAirtableError:
            return False
        running = [r for r in orch.runs.values() if r.running and r.running.poll() is None]
        if any(r.state is State.READY for r in running):
            return False
        orch.stop(keep_logs=True)
        path.unlink(missing_ok=True)
        return True

    def handle(self, name: str, path: Path) -> Handle:
        if name not in self.services:
            raise PyAirtableError(
                f"the kept stack in {path} has no service '{name}' (it was booted for other "
                "tests). Fix: `pyairtable down`, then run again."
            )
        return self.services[name].handle
