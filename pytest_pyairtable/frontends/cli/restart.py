"""`pyairtable restart SERVICE...`: restart services of the running stack (kept, or held
by a foreground `up`) from its record, as `docker compose restart` does: the named
services and, unless ``--no-deps``, the services that depend on them with
``restart: true``, in dependency order; then wait until every service depending on them
is healthy again. The record is updated with the new processes (or containers), so
`down`, `status` and attaching runs find them; they outlive this command. A job run
again is recorded with the digest of its declared inputs as they are now."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...engine.orchestrator import Orchestrator, State
from ...model import graph
from ...model.spec import StackSpec
from ...session.hookevents import HookEvents
from ...session.kept import KeptService, KeptStack
from ...state.jobinputs import digests, recorded
from ...support.errors import PyAirtableError

Say = Callable[[str], None]


def to_restart(orch: Orchestrator, names: Sequence[str], *, no_deps: bool) -> list[str]:
    """The named services and, as compose, their dependents through ``restart: true``
    edges; in dependency order."""
    chosen = set(names)
    if not no_deps:
        grew = True
        while grew:
            more = {
                n
                for n, run in orch.runs.items()
                if any(d.restart and d.name in chosen for d in run.spec.depends_on)
            }
            grew = not more <= chosen
            chosen |= more
    return [n for n in graph.start_order(orch.edges) if n in chosen]


def dependents(orch: Orchestrator, names: Sequence[str]) -> list[str]:
    """Every service that needs one of ``names``, directly or not; in dependency order."""
    found = set(names)
    for name in graph.start_order(orch.edges):
        if any(d in found for d in orch.edges[name]):
            found.add(name)
    return [n for n in graph.start_order(orch.edges) if n in found and n not in names]


def restart(
    path: Path,
    kept: KeptStack,
    names: Sequence[str],
    *,
    no_deps: bool,
    timeout: float | None,
    hook: Any,
    say: Say,
) -> int:
    unknown = [n for n in names if n not in kept.services]
    if unknown:
        raise PyAirtableError(
            f"no service {unknown[0]!r} in the running stack; it has: {', '.join(kept.services)}."
        )
    events = HookEvents(hook, kept.redactor())
    orch = kept.orchestrator(listener=events)
    order = to_restart(orch, list(names) or list(orch.runs), no_deps=no_deps)
    failed: list[str] = []
    try:
        for name in order:
            began = time.monotonic()
            try:
                orch.restart(name, grace=timeout)
            except PyAirtableError as exc:
                failed.append(str(exc))
                break
            finally:  # a new process (or container) is recorded, up or not
                _record(kept, orch, name, time.monotonic() - began)
            took = time.monotonic() - began
            say(f"pyairtable: {name:<22} restarted, {orch.runs[name].state.value} in {took:.2f}s")
        for name in [] if failed else dependents(orch, order):
            if orch.runs[name].state is State.READY:
                began = time.monotonic()
                try:
                    orch.regate(name)
                except PyAirtableError as exc:
                    failed.append(str(exc))
                    continue
                took = time.monotonic() - began
                say(f"pyairtable: {name:<22} healthy again ({took:.2f}s)")
    finally:
        kept.save(path)
        orch.detach(path)  # what was started anew outlives this command, as the rest
    # what the backend noticed while it launched (one it could not track by its cgroup)
    for line in [*orch.backend.notices, *failed]:
        say(f"pyairtable: {line}")
    return 1 if failed else 0


def _record(kept: KeptStack, orch: Orchestrator, name: str, took: float) -> None:
    run = orch.runs[name]
    if run.running is None:
        return
    old = kept.services[name]
    kept.services[name] = KeptService(
        spec=old.spec,
        handle=dataclasses.replace(old.handle, ready_seconds=round(took, 3)),
        completed=run.state is State.COMPLETED,
        started=time.time(),
        state=run.running.kept_state(),
    )
    if old.spec.job_inputs:  # it ran again, with the inputs as they are now
        found = digests(StackSpec(Path(kept.compose_file), {name: old.spec}))
        kept.inputs.pop(name, None)
        kept.inputs.update(recorded(found))
