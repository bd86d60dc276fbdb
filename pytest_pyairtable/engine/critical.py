"""The critical path of a boot: the longest chain of the started services' own
times-to-ready, and the runs in start order (the summary and the timeline file both use it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model import graph

if TYPE_CHECKING:  # light to import: the report module imports this at its top
    from .orchestrator import Orchestrator
    from .run import ServiceRun


def ordered_runs(orch: Orchestrator) -> list[ServiceRun]:
    order = graph.start_order(orch.edges)
    return [orch.runs[n] for n in order if n in orch.runs]


def critical(orch: Orchestrator) -> tuple[float, list[str]]:
    """The critical path of what started: the longest chain of own times-to-ready."""
    runs = ordered_runs(orch)
    edges = {r.name: [d for d in orch.edges[r.name] if d in orch.runs] for r in runs}
    return graph.critical_path(edges, {r.name: r.ready_seconds or 0.0 for r in runs})
