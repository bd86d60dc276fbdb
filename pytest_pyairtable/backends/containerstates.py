"""The project's containers as the engine's event stream tells it (start, die,
health_status, the removal), as it happens; an inspect is a fallback for a container
whose events were not seen (a kept stack's).

The stream is opened in its own thread, on a client without a read deadline (an engine
may hold a stream's headers back until its first event). An engine may end it while
the run goes on: Podman 4.3 ends every events stream when it rotates its events log
(``events_logfile_max_size``, 1 MB by default: some hours of a long session, or one
busy test suite). It is then asked again from the last event's second, and the events
already applied (the same time, container and action) are skipped.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from .dockerapi import PROJECT_LABEL, SERVICE_LABEL
from .engines import Engine

RESUBSCRIBE_GAP = 0.05  # before asking again after a stream that brought nothing new
KEPT_SEEN = 20000  # applied events remembered to skip a replay's repeats


class ContainerStates:
    """The project's containers as the event stream tells it: running or exited (and
    the exit code), and the engine's health verdict. Subscribed before anything starts,
    so no event of the run is missed; waiters wake the moment an event arrives."""

    def __init__(self, api: Any, project: str, engine: Engine, streams: Any = None) -> None:
        self._cv = threading.Condition()
        self._state: dict[str, dict[str, Any]] = {}
        self._created: dict[str, str] = {}  # service -> its latest container
        self._project = project
        self._api = api
        self._engine = engine
        self._open = True
        self._closed = False
        self._stream: Any = None
        # Events from a second before now: the request may reach the engine after the
        # first container's events (it is sent from the thread), and none may be missed.
        self._since = int(time.time()) - 1
        self._applied: dict[tuple[str, str, str], None] = {}  # (time, container, action)
        self._replayable = True  # every event so far had its time in nanoseconds
        self.subscriptions = 0  # streams opened: more than one, the engine ended one
        self._thread = threading.Thread(
            target=self._follow,
            args=(streams or api,),
            name=f"pyairtable-events-{project}",
            daemon=True,
        )
        self._thread.start()

    def _follow(self, streams: Any) -> None:
        try:
            gap = 0.0
            while True:
                new = self._subscribe(streams)
                if new is None or not self._replayable:
                    return  # closed here, the engine refused, or a repeat could not be told
                # Ended by the engine while the run goes on: asked again, from the last
                # event's second. A stream that ends with nothing new waits longer each
                # time (up to a second) before the next; closing ends the wait.
                gap = 0.0 if new else min(1.0, max(RESUBSCRIBE_GAP, gap * 2))
                with self._cv:
                    if self._cv.wait_for(lambda: self._closed, gap):
                        return
        finally:
            with self._cv:
                self._open = False
                self._cv.notify_all()

    def _subscribe(self, streams: Any) -> int | None:
        """One events stream, followed to its end: how many new events it brought, or
        None once it cannot (closed here, or the engine refused)."""
        with self._cv:
            if self._closed:
                return None
        try:
            stream = streams.events(
                since=self._since,
                filters={"type": ["container"], "label": [f"{PROJECT_LABEL}={self._project}"]},
                decode=True,
            )
        except Exception:  # the engine went away: callers inspect
            return None
        with self._cv:
            self._stream = stream
            self.subscriptions += 1
            if self._closed:
                stream.close()
                return None
        new, applied = 0, True
        with contextlib.suppress(Exception):  # the stream failed: asked again
            for event in stream:
                applied = False
                new += self._apply_once(event)
                applied = True
        with self._cv:
            self._stream = None  # (a close meanwhile has nothing of it to wait for)
        with contextlib.suppress(Exception):
            stream.close()
        # An event that could not be applied would fail again when replayed: the states
        # stop here, and callers inspect.
        return None if self._closed or not applied else new

    def _apply_once(self, event: dict[str, Any]) -> int:
        """Apply an event unless a stream before this one did (a replay from ``since``);
        one an error kept from being applied is applied when it comes again."""
        action, cid, attributes = _parts(event)
        nanos = event.get("timeNano")
        if nanos is None:  # no precise time: a replay's repeats could not be told apart
            self._replayable = False
            self._apply(action, cid, attributes)
            return 1
        key = (str(nanos), cid, action)
        if key in self._applied:
            return 0
        self._apply(action, cid, attributes)
        self._applied[key] = None
        if len(self._applied) > KEPT_SEEN:
            del self._applied[next(iter(self._applied))]
        self._since = max(self._since, int(nanos) // 1_000_000_000)
        return 1

    def _apply(self, action: str, cid: str, attributes: dict[str, Any]) -> None:
        if action == "health_status" and not self._engine.health_event_carries_status:
            action = f"health_status: {self._inspected_health(cid)}"
        with self._cv:
            state = self._state.setdefault(cid, {"starts": 0, "seen": False})
            state["seen"] = True
            if action == "create" and attributes.get(SERVICE_LABEL):
                self._created[str(attributes[SERVICE_LABEL])] = cid
            elif action == "start":
                state.update(running=True, exit_code=None, health=None)
                state["starts"] += 1
                state.setdefault("start_times", []).append(time.time())
            elif action == "die":
                state.update(running=False, exit_code=int(attributes.get("exitCode", -1)))
                state.setdefault("exits", []).append(state["exit_code"])
            elif action.startswith("health_status"):
                state["health"] = action.partition(":")[2].strip()
            elif action in self._engine.removal_events:
                state.update(running=False, removed=True)
                state.setdefault("exit_code", -1)
            self._cv.notify_all()

    def _inspected_health(self, cid: str) -> str:
        """The verdict an event without one announces (the event's own lags a check)."""
        with contextlib.suppress(Exception):  # gone: no verdict
            state = self._api.inspect_container(cid).get("State") or {}
            return str((state.get("Health") or {}).get("Status") or "")
        return ""

    @property
    def following(self) -> bool:
        return self._open

    def starts(self, cid: str) -> int:
        with self._cv:
            return int(self._state.get(cid, {}).get("starts", 0))

    def await_start(self, cid: str, before: int, timeout: float = 10.0) -> bool:
        """Until the start event after ``before`` earlier starts has arrived: from then
        on, what the stream says about the container is current."""
        with self._cv:
            return self._cv.wait_for(
                lambda: not self._open or self._state.get(cid, {}).get("starts", 0) > before,
                timeout,
            )

    def await_created(self, service: str, done: Callable[[], bool], timeout: float) -> str | None:
        """The container compose created for ``service``, the moment the engine says so
        (compose creates a chain's containers one after another: the first can start
        long before the last exists); None once ``done`` (compose has exited) without."""
        with self._cv:
            self._cv.wait_for(lambda: service in self._created or done() or not self._open, timeout)
            return self._created.get(service)

    def list_created(self, api: Any) -> None:
        """The project's containers made before the subscription (listed after it: a
        later one has its create event, which, newer, wins)."""
        label = {"label": f"{PROJECT_LABEL}={self._project}"}
        for found in api.containers(all=True, filters=label):
            service = (found.get("Labels") or {}).get(SERVICE_LABEL)
            if service:
                with self._cv:
                    self._created.setdefault(str(service), str(found["Id"]))
                    self._cv.notify_all()

    def wake(self) -> None:
        """Waiters look again (what they wait for changed outside the stream)."""
        with self._cv:
            self._cv.notify_all()

    def seed(self, cid: str, inspected: dict[str, Any]) -> None:
        """What an inspect said, unless an event said something since (it is newer)."""
        status = inspected.get("State") or {}
        with self._cv:
            if self._state.get(cid, {}).get("seen"):
                return
            self._state[cid] = {
                "starts": 0,
                "seen": False,
                "running": bool(status.get("Running")),
                "exit_code": None if status.get("Running") else int(status.get("ExitCode", -1)),
                "health": (status.get("Health") or {}).get("Status"),
            }

    def known(self, cid: str) -> bool:
        with self._cv:
            return self._open and cid in self._state

    def history(self, cid: str) -> tuple[list[float], list[int]]:
        """When it started (wall clock) and how each run ended, as the events told."""
        with self._cv:
            state = self._state.get(cid, {})
            return list(state.get("start_times", [])), list(state.get("exits", []))

    def exit_code(self, cid: str) -> int | None:
        with self._cv:
            state = self._state.get(cid, {})
            return None if state.get("running", True) else int(state.get("exit_code", -1))

    def health(self, cid: str) -> str | None:
        with self._cv:
            found = self._state.get(cid, {}).get("health")
            return None if found is None else str(found)

    def wait_exit(self, cid: str, timeout: float | None) -> int | None:
        with self._cv:
            self._cv.wait_for(
                lambda: not self._open or not self._state.get(cid, {}).get("running", True),
                timeout,
            )
        return self.exit_code(cid)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        # A request the engine never answered ends with its connection (the run's end).
        self._thread.join(5 if stream is not None else 0.1)


def _parts(event: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(action, container id, attributes) of an event, in either of the API's spellings."""
    actor = event.get("Actor") or {}
    action = str(event.get("Action") or event.get("status") or "")
    cid = str(actor.get("ID") or event.get("id") or "")
    return action, cid, actor.get("Attributes") or {}
