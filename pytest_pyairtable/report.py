"""Text a person reads: the service URL table and the start-up timeline."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .engine.orchestrator import Orchestrator, ServiceRun, State, endpoint
from .model import graph


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
