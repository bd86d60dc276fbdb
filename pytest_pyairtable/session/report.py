"""Text a person reads: the report header, the URL table, the start-up timeline, the
run summary, and which test reports a failure in full. Light to import (the header is
printed by every pytest run)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..model import graph
from ..support.errors import PyAirtableError
from ..support.redact import mask_url
from .settings import BY_NAME

if TYPE_CHECKING:
    from ..engine.orchestrator import Orchestrator, ServiceRun
    from .runtime import Runtime


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    return [line.format(*header).rstrip(), line.format(*("-" * w for w in widths)).rstrip()] + [
        line.format(*row).rstrip() for row in rows
    ]


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def ordered_runs(orch: Orchestrator) -> list[ServiceRun]:
    order = graph.start_order(orch.edges)
    return [orch.runs[n] for n in order if n in orch.runs]


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


def critical(orch: Orchestrator) -> tuple[float, list[str]]:
    """The critical path of what started: the longest chain of own times-to-ready."""
    runs = ordered_runs(orch)
    edges = {r.name: [d for d in orch.edges[r.name] if d in orch.runs] for r in runs}
    return graph.critical_path(edges, {r.name: r.ready_seconds or 0.0 for r in runs})


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
        f"{name}={_show(s[name])} ({s.sources[name]})"
        for name in BY_NAME
        if s.sources[name] != "default" or name in ("backend", "compose_file")
    ]
    lines = ["pyairtable: " + mask_url(", ".join(parts))]
    if runtime.loaded and runtime.error is not None:
        lines.append(f"pyairtable: stack unavailable: {str(runtime.error).splitlines()[0]}")
    elif topo := runtime.topology():  # cheap: the file is read in full only when needed
        tiers = max(graph.tiers(topo).values(), default=0)
        lines.append(f"pyairtable: {runtime.compose_file} ({len(topo)} services, {tiers} tiers)")
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
    if orch is None or not orch.runs or runtime.settings["up"]:
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
    tracking = orch.backend.tracking()
    lines = [head, *([f"process tracking: {tracking}"] if tracking else [])]
    return notices + lines + timeline(orch)


class FirstReports:
    """Which test reported each failure first, so the others only refer to it. A
    failure is recognised by its origin: each test is raised a fresh copy of it."""

    def __init__(self) -> None:
        self._first: dict[int, tuple[PyAirtableError, str]] = {}
        self._lock = threading.Lock()

    def first(self, error: PyAirtableError, nodeid: str) -> str:
        if error.first_nodeid:  # another process (the xdist controller) knows it
            return error.first_nodeid
        origin = error.origin or error
        with self._lock:  # the origin is kept, so its id is never reused meanwhile
            return self._first.setdefault(id(origin), (origin, nodeid))[1]


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "-"
    return "-" if value is None else str(value)


def redact_report(
    report: Any, redact: Callable[[str], str], as_text: Callable[[str, str], Any]
) -> None:
    """Mask secrets in a test report: its captured output sections and its failure,
    which go to the terminal, junit XML and xdist's controller. A failure whose text
    changed is replaced by ``as_text(text, headline)``; others keep pytest's own repr."""
    report.sections = [(title, redact(text)) for title, text in report.sections]
    longrepr = report.longrepr
    if longrepr is None:
        return
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        report.longrepr = (*longrepr[:2], redact(str(longrepr[2])))
        return
    text = str(longrepr)
    shown = redact(text)
    if shown != text:
        crash = getattr(longrepr, "reprcrash", None)
        message = getattr(crash, "message", None) or shown.splitlines()[0]
        report.longrepr = as_text(shown, redact(message))
