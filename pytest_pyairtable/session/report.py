"""Text a person reads: the report header, the URL table, the start-up timeline, the
run summary, and which test reports a failure in full. Light to import (the header is
printed by every pytest run)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..engine.critical import critical, ordered_runs
from ..model import graph
from ..support.redact import mask_url
from .settings import BY_NAME

if TYPE_CHECKING:
    from ..engine.orchestrator import Orchestrator
    from ..engine.run import ServiceRun
    from .runtime import Runtime


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return [line.format(*header).rstrip(), line.format(*("-" * w for w in widths)).rstrip()] + [
        line.format(*row).rstrip() for row in rows
    ]


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def url_table(orch: Orchestrator, redact: Callable[[str], str] | None = None) -> list[str]:
    """The seed's service URL table: name, URL, tier, time to healthy, state."""
    from ..engine.handle import endpoint

    redact = redact or orch.redact
    runs = ordered_runs(orch)
    where = _where(runs)
    rows = []
    for run in runs:
        _, _, url = endpoint(run.spec)
        state = [_secs(run.ready_seconds), run.outcome, *where.get(run.name, [])]
        rows.append([run.name, redact(url) or "-", str(run.tier), *state])
    return _table(["service", "url", "tier", "ready in", "state", *_where_head(where)], rows)


def _where(runs: Sequence[ServiceRun]) -> dict[str, list[str]]:
    """Where each service runs, for a stack placed over the host and containers (a column
    of its own); nothing for a stack on one backend."""
    from ..backends.base import where_of

    if not any(r.spec.backend for r in runs):
        return {}
    return {r.name: [where_of(r.spec)] for r in runs}


def _where_head(where: dict[str, list[str]]) -> list[str]:
    return ["runs on"] if where else []


def timeline(orch: Orchestrator) -> list[str]:
    """Each service's start, ready and time to ready, the critical path marked with *."""
    from ..engine.orchestrator import State

    runs = ordered_runs(orch)
    total, path = critical(orch)
    where = _where(runs)
    images = any(r.fetch is not None for r in runs)  # a column only where there were any
    rows = [
        [
            ("*" if r.name in path else " ") + " " + r.name,
            str(r.tier),
            *([_image(r)] if images else []),
            _secs(r.starting_at),
            _secs(r.ready_at),
            _secs(r.ready_seconds),
            r.outcome,
            *where.get(r.name, []),
        ]
        for r in runs
    ]
    head = ["  service", "tier", *(["image"] if images else []), "start", "ready", "to ready"]
    lines = _table([*head, "state", *_where_head(where)], rows)
    ready = [r.ready_at for r in runs if r.ready_at is not None and r.state is not State.FAILED]
    if ready and path:
        lines.append(
            f"boot {max(ready):.2f}s; critical path {total:.2f}s: {' -> '.join(path)} (* above)"
        )
    lines += images_lines(orch)
    return lines


def _image(run: ServiceRun) -> str:
    """Its pull or build, apart from its own start (which began once the image was there)."""
    fetch = run.fetch
    if fetch is None:
        return "-"
    if fetch.error is not None or not fetch.done:
        return f"{fetch.kind} failed" if fetch.error else fetch.kind
    return f"{fetch.outcome} {fetch.seconds:.2f}s"


def images_lines(orch: Orchestrator) -> list[str]:
    """The run's pulls and builds, each once (an image may serve several services):
    what, how long, how much; they ran beside the boot, before their services started."""
    lines = []
    for fetch in orch.backend.fetches():
        if fetch.done and fetch.error is None:
            lines.append(f"image: {fetch.summary()}, for {', '.join(fetch.services)}")
    return lines


def header(runtime: Runtime) -> list[str]:
    """The effective settings and where each came from, and the stack's shape."""
    s = runtime.settings
    parts = [
        f"{name}={_show(getattr(s, name))} ({s.sources[name]})"
        for name in BY_NAME
        if name != "compose_file" and (s.sources[name] != "default" or name == "backend")
    ]
    lines = ["pyairtable: " + mask_url(", ".join(parts))]
    files = ", ".join(str(f) for f in runtime.compose_files)
    if runtime.loaded and runtime.error is not None:
        lines.append(f"pyairtable: stack unavailable: {str(runtime.error).splitlines()[0]}")
    elif topo := runtime.topology():  # cheap: the file is read in full only when needed
        tiers = max(graph.tiers(topo).values(), default=0)
        lines.append(
            f"pyairtable: compose file(s) {files} ({runtime.compose_source}): "
            f"{len(topo)} services, {tiers} tiers"
        )
    elif not runtime.compose_file.is_file():
        lines.append(f"pyairtable: {runtime.no_compose_file()}")
    else:
        lines.append(f"pyairtable: compose file(s) {files} ({runtime.compose_source}): no services")
    if runtime.coverage is not None:
        lines.append(f"pyairtable: {runtime.coverage.describe()}")
    return lines


def summary(runtime: Runtime, *, verbose: bool = False) -> list[str]:
    """What the run did with the stack, for the terminal summary."""
    if runtime.kept is not None:
        return [
            f"attached to the kept stack ({len(runtime.kept.services)} services) in "
            f"{runtime.record_path}; it keeps running"
        ]
    orch = runtime.orch
    notices = runtime.all_notices(verbose=verbose)
    if orch is None or not orch.runs or runtime.settings.up:
        return notices
    total = len(runtime.topology())
    started = sum(1 for run in orch.runs.values() if run.starting_at is not None)
    if started == len(orch.runs):
        head = f"started {started} of {total} services (those the selected tests need):"
    else:  # a failure stopped the boot: the rest were needed, never started
        head = (
            f"started {started} of {total} services ({len(orch.runs) - started} more that "
            "the selected tests need did not start):"
        )
    tracking = orch.backend.tracking()  # after the table: readers of the table parse it
    lines = [head]
    said = [f"process tracking: {tracking}"] if tracking else []
    return notices + lines + timeline(orch) + policy_restarts(orch) + said


def policy_restarts(orch: Orchestrator) -> list[str]:
    """Each service its restart policy started again, how often and why."""
    lines = []
    for run in ordered_runs(orch):
        restarted = run.running.policy_restarts() if run.running is not None else []
        if restarted:
            codes = ", ".join(str(code) for _, code in restarted[-5:])
            lines.append(
                f"{run.name}: started again {len(restarted)} times by its restart policy "
                f"({run.spec.restart.mode}; exit codes {codes})"
            )
    return lines


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "-"
    return "-" if value is None else str(value)
