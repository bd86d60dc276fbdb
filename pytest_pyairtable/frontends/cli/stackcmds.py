"""`pyairtable down`, `status` and `logs`: commands on a recorded stack (kept, or held
by a foreground `up`). They need its record only, never the compose file or its
variables, and `down` stops it the way a run's own end does: dependents first, data
safety first, every process confirmed gone. With nothing running, `down` has nothing to
do (exit 0, as compose) and `logs` shows the last finished run's (lastrun.py). During a
boot, `down` cancels it (booting.py). A record copied from another directory is never
acted on (bound.py); clean-up touches only this stack's directories (markers.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...backends.markers import Owner, compose_of_record, kept_runs, run_bases, sweep
from ...session.booting import boot_path, booting
from ...session.hookevents import HookEvents
from ...session.kept import GONE, Foreground, ForeignRecord, KeptStack
from ...session.lastrun import LastRunLogs, read_last_run
from ...support.errors import PyAirtableError
from ...support.redact import Redactor
from ...support.signals import shielded

Say = Callable[[str], None]
ACK_SECONDS = 3.0  # a foreground `up` answers a signal at once: it removes the record
BOOT_STOP_SECONDS = 600.0  # a cancelled boot stops what it started: each within its grace


def load(path: Path) -> KeptStack:
    kept = KeptStack.load(path)
    boot = booting(path) if kept is None else None
    if boot is not None:
        raise PyAirtableError(
            f"the stack of {compose_of_record(path)} is still starting (process {boot.pid}); "
            "it is recorded once it is up. Fix: wait for it, or `pyairtable down` cancels it."
        )
    if kept is None:
        raise PyAirtableError(
            f"no running stack is recorded in {path}. "
            "Fix: start one with `pyairtable up` (or --detach)."
        )
    return kept


def _until(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _asked_to_stop(owner: Foreground, heard: Path, budget: float, say: Say) -> bool:
    """Ask the process ``owner`` (a foreground or booting `up`) to stop, as Ctrl-C would:
    SIGINT, then SIGTERM when it does not answer by removing ``heard`` (SIGINT is
    ignored by a job started with `&` in a script, or under nohup). True once it has
    stopped what it holds and exited."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ProcessLookupError):
            os.kill(owner.pid, sig)
        if _until(lambda: not heard.exists() or not owner.alive, ACK_SECONDS):
            break
        say(f"pyairtable: the owning process {owner.pid} did not answer {sig.name}")
    else:
        return False
    say(f"pyairtable: the owning process {owner.pid} is stopping the stack")
    if not _until(lambda: not owner.alive, budget):
        say(f"pyairtable: the owning process {owner.pid} still runs after {budget:.0f}s")
        return False
    return True


def _owner_stopped_it(kept: KeptStack, path: Path, say: Say) -> bool:
    """Ask the foreground `up` that holds the stack to stop it; True once it has."""
    assert kept.foreground is not None
    budget = sum(s.spec.stop_grace_period for s in kept.services.values()) + 60
    return _asked_to_stop(kept.foreground, path, budget, say)


def _cancel_boot(path: Path, say: Say) -> bool | None:
    """A `pyairtable up` still booting this stack is cancelled, as a Ctrl-C would: it
    stops what it started and records nothing. None when nothing boots; else whether
    the boot is over."""
    boot = booting(path)
    if boot is None:
        return None
    say(f"pyairtable: the stack is still starting (process {boot.pid}): cancelling the boot")
    if not _asked_to_stop(boot, boot_path(path), BOOT_STOP_SECONDS, say):
        return False
    say(f"pyairtable: boot cancelled: process {boot.pid} stopped what it had started")
    return True


def _leftovers(owner: Owner | None, say: Say) -> None:
    """`down --volumes`: this stack's logs kept from failed runs and what killed runs of
    it left; never another stack's (a copy of this project is another)."""
    removed = sweep(run_bases(), owner, retained_too=True)
    what = f"{len(removed)} director{'y' if len(removed) == 1 else 'ies'}" if removed else "none"
    say(f"pyairtable: removed logs and leftovers of earlier runs of this stack: {what}")


def _unrecorded(owner: Owner | None, say: Say) -> None:
    """Say so when a stack this project kept has lost its record (`git clean -fdX`
    removes .pyairtable/): it is left running, and nothing of it is removed."""
    for run_id, dirs in sorted(kept_runs(run_bases(), owner).items() if owner else ()):
        say(
            f"pyairtable: a stack kept by an earlier run ({run_id}) has no record any more; "
            "it is left as it is, and its directories stay while anything of it runs: "
            f"{', '.join(map(str, dirs))}. Fix: stop its processes (those working in these "
            f"directories, or carrying PYAIRTABLE_RUN_ID={run_id}; a compose stack's are "
            f"the containers of project pyairtable-run-{run_id}-v2), then `pyairtable down "
            "--volumes`."
        )


def down(path: Path, *, emergency: bool, volumes: bool, hook: Any, say: Say) -> int:
    stack = Owner.of(compose_of_record(path))
    cancelled = _cancel_boot(path, say)
    if cancelled is False:
        return 1
    try:
        kept = KeptStack.load(path)
    except ForeignRecord as exc:
        say(f"pyairtable: nothing to stop here: {exc}")
        kept = None
    else:
        if kept is None and not cancelled:
            say(f"pyairtable: nothing to stop: no running stack is recorded in {path}")
            _unrecorded(stack, say)
    code = (
        0
        if kept is None
        else _stop_kept(kept, path, emergency=emergency, volumes=volumes, hook=hook, say=say)
    )
    if volumes:
        _leftovers(stack, say)
        _drop_snapshots(path, say)
    return code


def _stop_kept(
    kept: KeptStack, path: Path, *, emergency: bool, volumes: bool, hook: Any, say: Say
) -> int:
    events = HookEvents(hook, kept.redactor())
    last_logs = LastRunLogs(path, kept.run_id, kept.redactor())
    events.stopped = last_logs.save  # `pyairtable logs` shows them after the stop
    orch = kept.orchestrator(listener=events, volumes=volumes)
    owner = kept.foreground
    if owner is not None and owner.pid != os.getpid() and owner.alive:
        if _owner_stopped_it(kept, path, say):
            left = [n for n, r in orch.runs.items() if r.running and r.running.poll() is None]
            if not left:
                _forget(path)
                say("pyairtable: stopped by its owning process")
                return 0
            say(f"pyairtable: {', '.join(left)} still running after the owner exited")
        say("pyairtable: stopping its services directly")
    # A service that died while kept makes this a failed run: its logs are kept, and
    # where is said. Otherwise they go with the stack (`logs` shows the last run's).
    died = [n for n, r in orch.runs.items() if r.running is not None and _died(r)]

    def hurry(signum: int) -> None:  # Ctrl-C again: not left half running, but not waited on
        killed = orch.hurry()
        say(f"pyairtable: interrupted: killed {', '.join(killed) or 'what is left'} (SIGKILL)")

    with shielded(hurry):
        orch.stop(emergency=emergency, keep_logs=bool(died) and not volumes)
    last_logs.finish()
    for line in events.drain():
        say(line)
    _forget(path)
    if died and not volumes:
        say(f"pyairtable: {', '.join(died)} had exited before the stop")
        for note in orch.backend.notices:
            say(f"pyairtable: {note}")
    for error in orch.stop_errors:
        say(f"pyairtable: {error}")
    return 1 if orch.stop_errors else 0


def _drop_snapshots(record: Path, say: Say) -> None:
    """`down --volumes`: the project's job snapshots go too (only this project's: the
    compose file beside the record's .pyairtable/ names them)."""
    from ...state.jobstore import Store

    if Store(compose_of_record(record)).clear():
        say("pyairtable: removed the job snapshots of this project")


def _died(run: Any) -> bool:
    from ...engine.run import State

    return run.state is State.READY and run.running.poll() is not None


def _forget(path: Path) -> None:
    """The record, and what was kept beside it (reset snapshots)."""
    from ...state.reset import snapshot_file

    path.unlink(missing_ok=True)
    snapshot_file(path).unlink(missing_ok=True)


def status_rows(kept: KeptStack) -> list[dict[str, Any]]:
    from ...backends.base import where_of

    orch = kept.orchestrator()
    problems = kept.problems(orch)
    redact = kept.redactor()
    rows = []
    for name in sorted(orch.runs, key=lambda n: (orch.runs[n].tier, n)):
        svc, problem = kept.services[name], problems[name]
        if svc.completed:
            state, health = "completed", "completed"
        elif problem == GONE:
            state, health = "exited", "unhealthy"
        else:
            state, health = "running", "healthy" if problem is None else "unhealthy"
        rows.append(
            {
                "service": name,
                "state": state,
                "health": health,
                "tier": orch.runs[name].tier,
                "url": redact(svc.handle.url),
                "uptime_seconds": round(time.time() - svc.started, 1),
                "error": redact(problem or ""),
                **({"runs_on": where_of(svc.spec)} if svc.spec.backend else {}),
                **({"restarts": len(restarted)} if (restarted := _restarts(orch, name)) else {}),
            }
        )
    return rows


def _restarts(orch: Any, name: str) -> list[tuple[float, int]]:
    running = orch.runs[name].running
    return running.policy_restarts() if running is not None else []


def status(path: Path, *, as_json: bool, say: Say, emit: Say) -> int:
    """The services' state, as lines through ``say`` (which masks), or as one JSON
    document through ``emit``: masked inside the data, so it parses."""
    kept = load(path)
    rows = status_rows(kept)
    if as_json:
        data = {"compose_file": kept.compose_file, "record": str(path), "services": rows}
        emit(json.dumps(kept.redactor().data(data), indent=2))
    else:
        for row in rows:
            note = f"  ({row['error']})" if row["error"] else ""
            age = row["uptime_seconds"]  # a completed job or a dead service is not up
            since = f"up {age:.0f}s" if row["state"] == "running" else f"started {age:.0f}s ago"
            where = f"  on the {row['runs_on']}" if row.get("runs_on") else ""
            where += f"  restarted {row['restarts']}x by its policy" if row.get("restarts") else ""
            say(
                f"{row['service']:<22} {row['state']:<9} {row['health']:<10} tier {row['tier']}  "
                f"{row['url']:<50} {since}{where}{note}"
            )
    return 0 if all(r["health"] in ("healthy", "completed") for r in rows) else 1


def _names(service: str | None, known: Sequence[str], what: str) -> list[str]:
    names = [service] if service else list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PyAirtableError(f"no service {unknown[0]!r} in {what}; it has: {', '.join(known)}.")
    return names


def logs(path: Path, service: str | None, *, follow: bool, lines: int, say: Say, note: Say) -> int:
    try:
        kept = KeptStack.load(path)
    except ForeignRecord as exc:
        note(f"pyairtable: {exc}")
        kept = None
    if kept is None:
        return last_run_logs(path, service, lines=lines, say=say, note=note)
    names = _names(service, list(kept.services), "the running stack")
    redact = kept.redactor()
    paths = {n: kept.services[n].handle.log_path for n in names}
    prefix = len(names) > 1
    offsets = {}
    for name, log in paths.items():
        text = log.read_text(errors="replace").splitlines() if log and log.exists() else []
        _print_lines(name, text[-lines:] if lines else [], prefix, redact, say)
        offsets[name] = log.stat().st_size if log and log.exists() else 0
    while follow:
        time.sleep(0.2)
        for name, log in paths.items():
            if log and log.exists() and log.stat().st_size > offsets[name]:
                with open(log, "rb") as f:
                    f.seek(offsets[name])
                    chunk = f.read()
                offsets[name] += len(chunk)
                _print_lines(name, chunk.decode(errors="replace").splitlines(), prefix, redact, say)
    return 0


def last_run_logs(path: Path, service: str | None, *, lines: int, say: Say, note: Say) -> int:
    """The logs of the last finished run, when no stack runs."""
    found = read_last_run(path)
    if found is None:
        raise PyAirtableError(
            f"no running stack is recorded in {path}, and no finished run left its logs "
            "there. Fix: start one with `pyairtable up` (or run the tests)."
        )
    index, directory = found
    names = _names(service, list(index.get("services", [])), "the last run")
    ago = time.time() - float(index.get("finished", time.time()))
    note(f"pyairtable: nothing runs; the logs of the last run, which ended {ago:.0f}s ago")
    redact = Redactor(list(index.get("secrets", [])), dict(index.get("identifiers", {})))
    for name in names:
        text = (directory / f"{name}.log").read_text(errors="replace").splitlines()
        _print_lines(name, text[-lines:] if lines else [], len(names) > 1, redact, say)
    return 0


def _print_lines(name: str, lines: Sequence[str], prefix: bool, redact: Redactor, say: Say) -> None:
    for line in lines:
        say(f"{name:<20}| {redact(line)}" if prefix else redact(line))
