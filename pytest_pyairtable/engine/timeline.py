"""The start-up timeline as files: a Chrome trace (open in Perfetto or chrome://tracing),
one track per service, and, for ``.html``, a self-contained Gantt chart with a time
axis, the critical path marked and a band where the tests ran.

Times are seconds since the orchestrator began. Restarts (a fault's heal, `pyairtable
restart`) are drawn as their own bars: the critical path stays the boot's.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..support.files import write_atomic
from .critical import critical, ordered_runs
from .orchestrator import Orchestrator
from .run import ServiceRun

Span = tuple[float, float]  # (began, ended), seconds since the orchestrator began
_TESTS_TID = 0


def _fetch_name(run: ServiceRun) -> str:
    """The image phase's name: "pulling app:1", "building", "reused"."""
    fetch = run.fetch
    if fetch is None:
        return ""
    verb = "pulling" if fetch.kind == "pull" else "building"
    return f"{verb} {fetch.label}"


def _phases(run: ServiceRun) -> list[tuple[str, float | None, float | None]]:
    phases = [
        ("waiting for dependencies", run.scheduled_at, run.starting_at),
        # its image's pull or build: within the wait, apart from its own start
        (_fetch_name(run), run.fetch_began, run.fetch_ended),
        (f"{run.name} starting", run.starting_at, run.ready_at),
    ]
    for began, ready in run.restarts:
        phases.append((f"{run.name} restarting", began, ready if ready is not None else began))
    for at, code in policy_restarts(run):
        phases.append((f"{run.name} restarted by its policy (exit {code})", at, at))
    phases.append((f"{run.name} stopping", run.stop_began, run.stopped_at))
    return phases


def policy_restarts(run: ServiceRun) -> list[tuple[float, int]]:
    """Its restarts by its restart policy, on the orchestrator's clock (they are told in
    wall-clock time); ``run.t0_wall`` is when that clock began."""
    if run.running is None:
        return []
    return [(at - run.t0_wall, code) for at, code in run.running.policy_restarts() if at]


def _event(name: str, begin: float, end: float, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "ph": "X",
        "ts": round(begin * 1e6),
        "dur": max(1, round((end - begin) * 1e6)),
        "pid": 1,
        "tid": tid,
        "args": args,
    }


def _track(tid: int, label: str) -> list[dict[str, Any]]:
    """The metadata naming a track and keeping tracks in start order."""
    return [
        {"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": label}},
        {"name": "thread_sort_index", "ph": "M", "pid": 1, "tid": tid, "args": {"sort_index": tid}},
    ]


def chrome_trace(orch: Orchestrator, tests: Span | None = None) -> dict[str, Any]:
    """One track per service, in start order, each phase a complete event ("X")."""
    _, path = critical(orch)
    events: list[dict[str, Any]] = []
    for tid, run in enumerate(ordered_runs(orch), start=1):
        args = {
            "service": run.name,
            "tier": run.tier,
            "outcome": run.outcome,
            "critical": run.name in path,
        }
        for name, begin, end in _phases(run):
            if begin is not None and end is not None:
                events.append(_event(name, begin, end, tid, args))
        events += _track(tid, f"{run.name} (tier {run.tier})")
    if tests is not None:
        events.append(_event("tests ran", tests[0], tests[1], _TESTS_TID, {}))
        events += _track(_TESTS_TID, "tests")
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def _step(end: float) -> float:
    """A round tick interval giving at most ten ticks."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if end / step <= 10:
            return float(step)
    return end / 10


def gantt_html(orch: Orchestrator, tests: Span | None = None) -> str:
    """The page; its text (names) masked piece by piece before it is escaped."""
    total, path = critical(orch)
    path = [orch.redact(name) for name in path]
    runs = ordered_runs(orch)
    times = [t for r in runs for _, b, e in _phases(r) for t in (b, e) if t is not None]
    end = max([*times, *(tests or ()), 0.001])
    step = _step(end)
    ticks = "".join(
        f'<span class="tick" style="left:{100.0 * n * step / end:.2f}%">{n * step:g}s</span>'
        for n in range(int(end / step) + 1)
    )
    band = ""
    if tests is not None:
        left, width = 100.0 * tests[0] / end, 100.0 * (tests[1] - tests[0]) / end
        band = f'<div class="tests" style="left:{left:.2f}%;width:{max(0.3, width):.2f}%"></div>'
    rows = "\n".join(_row(r, end, orch.redact(r.name) in path, band, orch.redact) for r in runs)
    title = f"Start-up timeline: {len(runs)} services, critical path {total:.2f}s"
    return _PAGE.format(
        title=html.escape(title),
        rows=rows,
        path=html.escape(" → ".join(path)),
        end=f"{end:.2f}",
        ticks=ticks,
        grid=f"{100.0 * step / end:.4f}",
        tests=_tests_note(tests),
    )


def _tests_note(tests: Span | None) -> str:
    if tests is None:
        return ""
    return f" Green band: where the tests ran ({tests[0]:.2f}s to {tests[1]:.2f}s)."


def _bar(css: str, begin: float, finish: float, end: float, title: str = "") -> str:
    left, right = 100.0 * begin / end, 100.0 * finish / end
    tip = f' title="{html.escape(title)}"' if title else ""
    return (
        f'<div class="{css}" style="left:{left:.2f}%;width:{max(0.3, right - left):.2f}%"{tip}>'
        "</div>"
    )


def _row(
    run: ServiceRun, end: float, on_path: bool, band: str, redact: Callable[[str], str]
) -> str:
    bars = [band] if band else []
    if run.fetch_began is not None and run.fetch_ended is not None:
        tip = run.fetch.summary() if run.fetch is not None else ""
        bars.append(_bar("bar fetch", run.fetch_began, run.fetch_ended, end, tip))
    if run.starting_at is not None:
        finish = run.ready_at if run.ready_at is not None else (run.stopped_at or run.starting_at)
        kind = "critical" if on_path else ("failed" if run.outcome == "failed" else "start")
        tip = f"{run.ready_seconds or 0:.3f}s to ready"
        bars.append(_bar(f"bar {kind}", run.starting_at, finish, end, tip))
    for began, ready in run.restarts:
        done = ready if ready is not None else began
        bars.append(_bar("bar restart", began, done, end, f"restarted: {done - began:.3f}s"))
    for at, code in policy_restarts(run):
        bars.append(_bar("bar restart", at, at, end, f"restarted by its policy (exit {code})"))
    if run.stop_began is not None and run.stopped_at is not None:
        bars.append(_bar("stop", run.stop_began, run.stopped_at, end))
    label = f"{html.escape(redact(run.name))} <small>tier {run.tier} · {run.outcome}</small>"
    lane = f'<div class="lane">{"".join(bars)}</div>'
    return f'<div class="row"><div class="name">{label}</div>{lane}</div>'


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title><style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; }}
.row {{ display: flex; align-items: center; height: 26px; }}
.name {{ width: 260px; }} .name small {{ color: #777; }}
.lane {{ position: relative; flex: 1; height: 18px; background-color: #f3f3f3;
  background-image: repeating-linear-gradient(to right, #ccc 0 1px, transparent 1px {grid}%); }}
.axis .lane {{ background: none; height: 18px; border-top: 1px solid #999; }}
.tick {{ position: absolute; top: 2px; font-size: 11px; color: #555; transform: translateX(-50%); }}
.bar, .stop, .tests {{ position: absolute; top: 0; height: 18px; border-radius: 3px; }}
.start {{ background: #6aa0e0; }} .critical {{ background: #e07a3a; }}
.failed {{ background: #c33; }} .stop {{ background: #999; }} .restart {{ background: #9b6ad0; }}
.fetch {{ background: #3aa6a0; }}
.tests {{ background: rgba(60, 170, 90, 0.25); border-radius: 0; }}
</style></head><body>
<h1>{title}</h1>
<p>Orange: the critical path ({path}). Blue: other services starting. Teal: an image
pulled or built (before its service could start). Purple: restarts.
Grey: stopping.{tests} Time runs left to right, 0 to {end}s.</p>
{rows}
<div class="row axis"><div class="name"></div><div class="lane">{ticks}</div></div>
</body></html>
"""


def write_timeline(orch: Orchestrator, path: Path, tests: Span | None = None) -> str:
    """Write it (masked inside the data, so the trace parses and the page renders);
    returns the line saying where, or why not: the run is over, its teardown must not
    fail on a path."""
    path = path.resolve()
    if path.suffix.lower() in (".html", ".htm"):
        text = gantt_html(orch, tests)
    else:
        text = json.dumps(orch.redact.data(chrome_trace(orch, tests)), indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        return f"start-up timeline not written to {path}: {exc.strerror}"
    return f"start-up timeline written to {path}"
