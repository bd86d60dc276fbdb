"""When a container's healthcheck can first pass, foreseen from its earlier boots.

A healthcheck gated on the port its test names (healthgate.py) runs the moment that
port takes connections, and then costs its own run before the service counts as ready:
for ``python3 -c "urllib.request.urlopen(...)"`` an interpreter's start-up, 30-60 ms,
on every link of a dependency chain. The same service, booted again from the same image
and command, opens its port about as long after its container starts as it did before.
So each launch keeps, per service, how long after the start its port was first seen to
accept (looked at during a foreseen run too: were only the runs that missed to say it,
the forecasts would drift late) and what a run of its test that began with the port
open cost; the next launch runs the test that much ahead of the foreseen opening, its
connection, late in the run, coming just after the opening.

Openings move by tens of milliseconds from boot to boot, as much as such a test costs.
So where the container has a shell kept open for its test (execsession.py), the test
runs as a volley (healthvolley.py): a run every ``cost / VOLLEY_PER_COST`` seconds,
from ahead of the earliest opening its spread foresees until the port is seen open (or
the planned runs are out): whenever the port opens, a run is already on its way to
connect just after it. Runs overlap by ``VOLLEY_PER_COST``: that many interpreters
start at once, for about one cost and the spread, once per launch; a volley is at most
``VOLLEY_MAX`` runs and ``VOLLEY_SPEND`` seconds of their cost, one more at the
opening, and all of a backend's volleys hold at most ``VOLLEY_SLOTS`` runs ahead of
their openings at once. Elsewhere (one exec per run) it runs once, aimed a little late.

It changes what runs when, never what counts: the service is ready only when its own
test passes. A forecast that misses costs its runs; the next runs the moment the port
accepts. A test that waits inside itself when it runs early (its own retries and sleeps)
would hold the gate's run back: once a foreseen run passes that long after the opening
(or after its own start, begun at the opening), none of its runs having failed before
the opening, that service is not foreseen again. Only the first wait of a launch is
foreseen and kept (a wait after a fault's heal begins with the port open: it says
nothing of an opening).

Kept in ``$XDG_CACHE_HOME/pytest-pyairtable/ready-times.json`` (answercache.py, owner
only), under a digest of the service's project directory, name, image, entrypoint,
command and test: nothing of their text. ``PYAIRTABLE_READY_FORECASTS=0`` turns it off;
deleting the file forgets them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import statistics
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..support import answercache

CACHE = "ready-times"
FORMAT = "2"
KEPT_BOOTS = 5  # the openings a forecast is the median of
KEPT_SERVICES = 512  # the file's bound: the services seen longest ago go first
# A run's connection comes before its end by the request, the program's exit and the
# shell's answer: ~10 ms of a 50 ms interpreter start-up. Its end is aimed that much
# after the opening, and half the openings' spread more.
LATE_BY = 0.004
LATE_PER_COST = 0.1
LATE_PER_SPREAD = 0.5
WAITS_INSIDE = 2.0  # a foreseen pass this many costs after the opening: not foreseen again
VOLLEY_PER_COST = 2.0  # a volley's runs in flight at once
VOLLEY_SLOTS = 3  # runs ahead of openings all volleys (a backend's) hold at once
VOLLEY_MAX = 8  # runs of one volley before the opening, at most ...
VOLLEY_SPEND = 0.4  # ... and at most this many seconds of their cost (two runs at least)
VOLLEY_FROM_COST = 0.02  # a cheaper test runs once: a gated run is as quick as a volley
# A run connects ~0.9 of its cost in, later on a loaded machine; one begun more than
# this many costs before the opening may have connected before it: one more is run at
# the opening (the cheaper mistake).
CONNECTED_BY = 0.5
_WORKING_DIR = "com.docker.compose.project.working_dir"


@dataclass(frozen=True)
class Forecast:
    opens_after: float  # seconds from the container's start to its port accepting
    cost: float  # what a run of the test that began with the port open took
    spread: float  # max - min of the openings it comes from

    def lead(self) -> float:
        """How long after the start to run the test (see LATE_BY)."""
        late = LATE_BY + LATE_PER_COST * self.cost + LATE_PER_SPREAD * self.spread
        return self.opens_after - self.cost + late

    @property
    def width(self) -> float:
        """The span of openings foreseen, centred on ``opens_after``: at least a run's
        cost (few openings kept: their spread is short)."""
        return max(self.spread, self.cost)

    def volley(self) -> tuple[float, float, int]:
        """(first run, gap between runs, runs) of a volley, its first run's start in
        seconds after the container's start: the first connects about as the earliest
        opening the spread foresees, the last just after the latest, unless the runs'
        bound (``VOLLEY_MAX``, ``VOLLEY_SPEND``) ends it sooner."""
        gap = self.cost / VOLLEY_PER_COST
        first = self.opens_after - self.width / 2 - self.cost
        bound = min(VOLLEY_MAX, max(2, int(VOLLEY_SPEND / self.cost + 1e-9)))
        return first, gap, min(bound, round(self.width / gap) + 2)


@dataclass(frozen=True)
class Seen:
    """One launch's wait, as its probe saw it."""

    opened_after: float | None  # None: the port was open at the first look
    cost: float | None  # None: no run began with the port open
    waits_inside: bool = False  # a foreseen run passed long after the opening


def service_key(name: str, inspected: dict[str, Any], test: Sequence[str]) -> str:
    config = inspected.get("Config") or {}
    where = (config.get("Labels") or {}).get(_WORKING_DIR)
    what = [where, name, config.get("Image"), config.get("Entrypoint"), config.get("Cmd")]
    what.append(list(test))
    return hashlib.sha256(json.dumps(what, default=str).encode()).hexdigest()[:24]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def _entry(found: Any) -> dict[str, Any] | None:
    """A kept entry as written, or None for anything else (an older or edited file)."""
    if not isinstance(found, dict) or not isinstance(found.get("open"), list):
        return None
    openings = [t for t in map(_number, found["open"]) if t is not None][-KEPT_BOOTS:]
    return {"open": openings, "cost": _number(found.get("cost")), "off": found.get("off") is True}


class ReadyTimes:
    """A backend's forecasts: read at its first service, written once at its close."""

    def __init__(self) -> None:
        self.enabled = os.environ.get("PYAIRTABLE_READY_FORECASTS", "1") != "0"
        self._lock = threading.Lock()
        self._known: dict[str, Any] | None = None
        self._seen: dict[str, list[Seen]] = {}
        # runs ahead of an opening held at once, whatever the services: a wide tier's
        # volleys together take about as many cores as one chain link's (a volley gives
        # back its runs' slots once one passed, while the others end)
        self.volley_slots = threading.BoundedSemaphore(VOLLEY_SLOTS)

    def _load(self) -> dict[str, Any]:
        with self._lock:
            if self._known is None:
                found, answer = answercache.recall(CACHE, "services", FORMAT)
                self._known = answer if found and isinstance(answer, dict) else {}
            return self._known

    def forecast(self, key: str) -> Forecast | None:
        entry = _entry(self._load().get(key)) if self.enabled else None
        if entry is None or entry["off"] or not entry["open"] or not entry["cost"]:
            return None
        openings = entry["open"]
        return Forecast(statistics.median(openings), entry["cost"], max(openings) - min(openings))

    def observe(self, key: str, seen: Seen) -> None:
        with self._lock:
            self._seen.setdefault(key, []).append(seen)

    def save(self) -> None:
        """Fold this run's launches into the file; another run's services, written
        meanwhile, are kept (the read and the write hold a lock: xdist workers end at
        once). Never raises: forecasts only ever save time."""
        with self._lock:
            seen, self._seen = self._seen, {}
        if not seen or not self.enabled:
            return
        with contextlib.suppress(Exception), _locked(answercache.cache_file(CACHE)):
            _, answer = answercache.recall(CACHE, "services", FORMAT)
            known: dict[str, Any] = answer if isinstance(answer, dict) else {}
            for key, launches in seen.items():
                entry = _entry(known.pop(key, None)) or {"open": [], "cost": None, "off": False}
                for one in launches:
                    if one.opened_after is not None:
                        entry["open"] = [*entry["open"], round(one.opened_after, 4)][-KEPT_BOOTS:]
                    if one.cost is not None:
                        entry["cost"] = round(one.cost, 4)
                    entry["off"] = entry["off"] or one.waits_inside
                if entry["open"] or entry["off"]:
                    known[key] = entry
            while len(known) > KEPT_SERVICES:
                known.pop(next(iter(known)))
            answercache.remember(CACHE, "services", FORMAT, known)


@contextlib.contextmanager
def _locked(path: Any) -> Any:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
