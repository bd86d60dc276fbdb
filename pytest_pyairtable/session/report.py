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
    rows = []
    for run in ordered_runs(orch):
        _, _, url = endpoint(run.spec)
        rows.append(
            [run.name, redact(url) or "-", str(run.tier), _secs(run.ready_seconds), run.outcome]
        )
    return _table(["service", "url", "tier", "ready in", "state"], rows)


def timeline(orch: Orchestrator) -> list[str]:
    """Each service's start, ready and time to ready, the critical path marked with *."""
    from ..engine.orchestrator import State

    runs = ordered_runs(orch)
    total, path = critical(orch)
    rows = [
        [
            ("*" if r.name in path else " ") + " " + r.name,
            str(r.tier),
            _secs(r.starting_at),
            _secs(r.ready_at),
            _secs(r.ready_seconds),
            r.outcome,
        ]
        for r in runs
    ]
    lines = _table(["  service", "tier", "start", "ready", "to ready", "state"], rows)
    ready = [r.ready_at for r in runs if r.ready_at is not None and r.state is not State.FAILED]
    if ready and path:
        lines.append(
            f"boot {max(ready):.2f}s; critical path {total:.2f}s: {' -> '.join(path)} (* above)"
        )
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
    return lines


def summary(runtime: Runtime) -> list[str]:
    """What the run did with the stack, for the terminal summary."""
    if runtime.kept is not None:
        return [
            f"attached to the kept stack ({len(runtime.kept.services)} services) in "
            f"{runtime.record_path}; it keeps running"
        ]
    orch = runtime.orch
    notices = runtime.all_notices()
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
    lines = [head]
    return notices + lines + timeline(orch)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "-"
    return "-" if value is None else str(value)
