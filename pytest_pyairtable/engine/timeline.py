"""The start-up timeline as files: a Chrome trace (open in Perfetto or chrome://tracing)
and, for ``.html``, a self-contained Gantt chart with the critical path marked."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..report import critical, ordered_runs
from .orchestrator import Orchestrator, ServiceRun


def chrome_trace(orch: Orchestrator) -> dict[str, Any]:
    """One complete event ("X") per phase: waiting for dependencies, starting, stopping."""
    _, path = critical(orch)
    events: list[dict[str, Any]] = []
    for run in ordered_runs(orch):
        common = {
            "pid": 1,
            "tid": run.tier,
            "args": {
                "service": run.name,
                "tier": run.tier,
                "outcome": run.outcome,
                "critical": run.name in path,
            },
        }
        phases = [
            ("waiting for dependencies", run.scheduled_at, run.starting_at),
            (f"{run.name} starting", run.starting_at, run.ready_at),
            (f"{run.name} stopping", run.stop_began, run.stopped_at),
        ]
        for name, begin, end in phases:
            if begin is not None and end is not None:
                events.append(
                    {
                        "name": name,
                        "ph": "X",
                        "ts": round(begin * 1e6),
                        "dur": max(1, round((end - begin) * 1e6)),
                        **common,
                    }
                )
    events += [
        {"name": "thread_name", "ph": "M", "pid": 1, "tid": t, "args": {"name": f"tier {t}"}}
        for t in sorted({r.tier for r in orch.runs.values()})
    ]
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def gantt_html(orch: Orchestrator) -> str:
    total, path = critical(orch)
    runs = ordered_runs(orch)
    end = max([r.stopped_at or r.ready_at or 0.0 for r in runs] + [0.001])
    rows = "\n".join(_row(r, end, r.name in path) for r in runs)
    title = f"Start-up timeline: {len(runs)} services, critical path {total:.2f}s"
    return _PAGE.format(
        title=html.escape(title), rows=rows, path=html.escape(" → ".join(path)), end=f"{end:.2f}"
    )


def _row(run: ServiceRun, end: float, on_path: bool) -> str:
    def pct(t: float | None) -> float:
        return 100.0 * (t or 0.0) / end

    bars = []
    if run.starting_at is not None:
        finish = run.ready_at if run.ready_at is not None else (run.stopped_at or run.starting_at)
        kind = "critical" if on_path else ("failed" if run.outcome == "failed" else "start")
        bars.append(
            f'<div class="bar {kind}" style="left:{pct(run.starting_at):.2f}%;'
            f'width:{max(0.3, pct(finish) - pct(run.starting_at)):.2f}%" '
            f'title="{run.ready_seconds or 0:.3f}s to ready"></div>'
        )
    if run.stop_began is not None and run.stopped_at is not None:
        bars.append(
            f'<div class="stop" style="left:{pct(run.stop_began):.2f}%;'
            f'width:{max(0.3, pct(run.stopped_at) - pct(run.stop_began)):.2f}%"></div>'
        )
    label = f"{html.escape(run.name)} <small>tier {run.tier} · {run.outcome}</small>"
    lane = f'<div class="lane">{"".join(bars)}</div>'
    return f'<div class="row"><div class="name">{label}</div>{lane}</div>'


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title><style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; }}
.row {{ display: flex; align-items: center; height: 26px; }}
.name {{ width: 260px; }} .name small {{ color: #777; }}
.lane {{ position: relative; flex: 1; height: 18px; background: #f3f3f3; }}
.bar, .stop {{ position: absolute; top: 0; height: 18px; border-radius: 3px; }}
.start {{ background: #6aa0e0; }} .critical {{ background: #e07a3a; }}
.failed {{ background: #c33; }} .stop {{ background: #999; }}
</style></head><body>
<h1>{title}</h1>
<p>Orange: the critical path ({path}). Blue: other services starting. Grey: stopping.
Time runs left to right, 0 to {end}s.</p>
{rows}
</body></html>
"""


def write_timeline(orch: Orchestrator, path: Path) -> str:
    """Write it (redacted, as every output); returns the line saying where, or why not:
    the run is over, its teardown must not fail on a path."""
    path = path.resolve()
    if path.suffix.lower() in (".html", ".htm"):
        text = gantt_html(orch)
    else:
        text = json.dumps(chrome_trace(orch), indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(orch.redact(text), encoding="utf-8")
    except OSError as exc:
        return f"start-up timeline not written to {path}: {exc.strerror}"
    return f"start-up timeline written to {path}"
