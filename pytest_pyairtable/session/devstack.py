"""A dev stack, as ``pyairtable up`` and ``pytest --pyairtable-up`` boot it: start,
print the URL table, then keep it (``--detach`` / ``--pyairtable-keep``) or hold it
until Ctrl-C or SIGTERM. Both front ends call ``up``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..backends.markers import recorded_run
from ..model import graph
from ..support.errors import KeepError, PrerequisiteError
from ..support.signals import shielded

if TYPE_CHECKING:
    from ..engine.orchestrator import Orchestrator
    from .booting import Boot
    from .runtime import Runtime


def select(runtime: Runtime, services: Sequence[str]) -> None:
    """Select ``services`` and what they need (all when none are named), then check every
    prerequisite of the selection (binaries, commands, free ports) before anything
    starts: all that is missing is listed at once, and nothing was started."""
    if runtime.error is not None:
        raise runtime.error
    assert runtime.stack is not None
    if services:
        runtime.needed = set(runtime.stack.require(services))
    if runtime.attached() is None:
        names = graph.closure(runtime.topology(), runtime.needed or runtime.topology())
        specs = [runtime.stack.services[n] for n in sorted(names)]
        problems = runtime.backend_class.preflight(specs)
        if problems:
            runtime.flush()  # first why a kept stack was not attached to: often the cause
            listed = "\n".join(f"  - {p}" for p in problems)
            raise PrerequisiteError(
                f"{len(problems)} prerequisite(s) missing; nothing was started:\n{listed}"
            )


def wait_all(runtime: Runtime, orch: Orchestrator) -> None:
    """Until every started service is up or failed, printing progress as it goes."""
    orch.expect(orch.runs)
    for name in graph.start_order({n: orch.edges[n] for n in orch.runs}):
        while not orch.settle(name, 0.1):
            runtime.flush()
            if runtime.progress is not None:
                runtime.progress(orch)
    runtime.flush()


def hold(runtime: Runtime, boot: Boot) -> int:
    """The stack is up: hold it until Ctrl-C or SIGTERM. Recorded while it runs, so
    `pyairtable status/logs/down` and test runs in another terminal find it; removed the
    moment it begins to stop, which tells a `pyairtable down` that asked for the stop
    that it was heard."""
    from .kept import Foreground

    say = runtime.say or print
    path = runtime.record_path
    try:
        runtime.record(Foreground.me()).save(path)
    except KeepError as exc:  # held all the same, only not found by other commands
        say(f"pyairtable: {str(exc).replace('not kept', 'not recorded')}")
    boot.end()  # the record says who holds it now
    say("pyairtable: stack is up. Press Ctrl-C to stop it.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say("pyairtable: stopping (reverse dependency order) ...")
    finally:
        if recorded_run(path) == runtime.run_id:  # ours: another may be there
            path.unlink(missing_ok=True)
    return 0


def up(runtime: Runtime) -> int:
    """Boot, print the URL table, then keep or hold. A Ctrl-C (or SIGTERM) during the
    start-up stops everything and is raised again: nothing half-started is kept."""
    from .booting import Boot
    from .report import url_table

    say = runtime.say or print
    if runtime.attached() is not None:
        runtime.flush()
        say("pyairtable: the stack is already up (kept); `pyairtable down` stops it")
        return 0
    boot = Boot(runtime.record_path, runtime.run_id)
    boot.begin()  # before anything starts: a `down` meanwhile cancels the boot
    orch = None
    try:
        orch = runtime.orchestrator()
        orch.start(sorted(runtime.needed) or None)
        wait_all(runtime, orch)
        lines = url_table(orch)  # then notes, e.g. which PostgreSQL runs for which image
        notes = [*orch.backend.notices, *orch.snapshots.notices, *orch.backend.notes]
        lines += [f"pyairtable: {note}" for note in notes]
        for line in lines:
            say(line)
        failed = [r.error for r in orch.runs.values() if r.error is not None]
        for error in failed:
            say(str(error))
        if failed:
            say("pyairtable: the stack is stopped: a service failed")
            return 1
        if runtime.settings.keep:
            return 0 if runtime.keep() is not None else 1
        return hold(runtime, boot)
    finally:
        boot.end()  # as the stop begins: a `down` that asked for it was heard
        orch = orch or runtime.orch  # made, even if the cancel came before it was returned
        if orch is not None and not orch.stopped:
            began, said = time.monotonic(), set(orch.backend.notices)
            with shielded(runtime.hurry):
                runtime.stop()
            took = time.monotonic() - began
            say(f"pyairtable: stopped {len(orch.runs)} services in {took:.2f}s")
            for note in orch.backend.notices:  # where a failed run's logs are kept
                if note not in said:
                    say(f"pyairtable: {note}")
        runtime.flush()
