"""When a container's healthcheck can first pass, foreseen from its earlier boots.

A healthcheck gated on its port (healthgate.py) runs the moment the port takes
connections, and then costs its own run before the service counts as ready: for
``python3 -c "urllib.request.urlopen(...)"`` an interpreter's start-up, 30-60 ms, on
every link of a dependency chain. The same service, booted again from the same image
and command, opens its port about as long after its container starts as it did before.
So each boot keeps, per service, how long after the start its port was first seen to
accept and what a passing run of its test cost; the next boot runs the test once
that much ahead of the foreseen opening, its connection coming just after it.

It changes what runs when, never what counts: the service is ready only when its own
test passes. A forecast that misses costs one run of the test (the next one runs the
moment the port accepts, as without one); a service that got slower or faster is
seen by the gate and foreseen from the newer boots. Kept in
``$XDG_CACHE_HOME/pytest-pyairtable/ready-times.json`` (answercache.py), under a digest
of the service's name, image, entrypoint, command and test: nothing of their text.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..support import answercache

CACHE = "ready-times"
FORMAT = "1"
KEPT_BOOTS = 5  # the openings a forecast is the median of
KEPT_SERVICES = 512  # the file's bound: the services seen longest ago go first
LATE_BY = 0.004  # the test's connection aimed this long after the foreseen opening ...
LATE_PER_SPREAD = 0.5  # ... and half the openings' spread more


@dataclass(frozen=True)
class Forecast:
    opens_after: float  # seconds from the container's start to its port accepting
    cost: float  # what a passing run of the test took, end to end
    spread: float  # max - min of the openings it comes from

    def lead(self) -> float:
        """How long after the start to run the test: its connection comes late in its
        run (after the interpreter's imports), aimed a little after the opening."""
        return self.opens_after - self.cost + LATE_BY + LATE_PER_SPREAD * self.spread


def service_key(name: str, inspected: dict[str, Any], test: Sequence[str]) -> str:
    config = inspected.get("Config") or {}
    what = [name, config.get("Image"), config.get("Entrypoint"), config.get("Cmd"), list(test)]
    return hashlib.sha256(json.dumps(what, default=str).encode()).hexdigest()[:24]


class ReadyTimes:
    """A backend's forecasts: read at its first service, written once at its close."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, Any] | None = None
        self._seen: dict[str, tuple[float | None, float]] = {}

    def _load(self) -> dict[str, Any]:
        with self._lock:
            if self._known is None:
                found, answer = answercache.recall(CACHE, "services", FORMAT)
                self._known = answer if found and isinstance(answer, dict) else {}
            return self._known

    def forecast(self, key: str) -> Forecast | None:
        entry: Any = self._load().get(key)
        try:
            openings = [float(t) for t in entry["open"]][-KEPT_BOOTS:]
            cost = float(entry["cost"])
        except (TypeError, KeyError, ValueError):
            return None
        if not openings or cost <= 0:
            return None
        return Forecast(statistics.median(openings), cost, max(openings) - min(openings))

    def observe(self, key: str, opened_after: float | None, cost: float) -> None:
        """A boot's readiness: when its port was first seen to accept (looked at during a
        foreseen run too: were only the runs that missed to say it, the forecasts would
        drift late), None where it was not seen."""
        with self._lock:
            self._seen[key] = (opened_after, cost)

    def save(self) -> None:
        with self._lock:
            seen, self._seen = self._seen, {}
        if not seen:
            return
        # Another run may have written meanwhile: its services are kept, ours updated.
        _, answer = answercache.recall(CACHE, "services", FORMAT)
        known: dict[str, Any] = answer if isinstance(answer, dict) else {}
        for key, (opened_after, cost) in seen.items():
            entry = known.pop(key, None)
            openings = list(entry.get("open") or []) if isinstance(entry, dict) else []
            if opened_after is not None:
                openings.append(round(opened_after, 4))
            if openings:
                known[key] = {"open": openings[-KEPT_BOOTS:], "cost": round(cost, 4)}
        while len(known) > KEPT_SERVICES:
            known.pop(next(iter(known)))
        answercache.remember(CACHE, "services", FORMAT, known)
