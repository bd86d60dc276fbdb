"""The engine through its API (the ``docker`` SDK, docker-py): the project's container
events followed in one stream, and container logs followed into files. Typed errors, no
CLI process per call, no text to parse. Which engine, and how it differs: engines.py.

State comes from the event stream (start, die, health_status, the removal) as it
happens; an inspect is a fallback for a container whose events were not seen (a kept
stack's). Both streams are opened in their own threads, on a client without a read
deadline: an engine may hold a stream's headers back until its first line.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..support.files import open_private
from .engines import Engine

PROJECT_LABEL = "com.docker.compose.project"
LIVE_STATES = ("running", "paused", "restarting")  # a container whose processes exist
SERVICE_LABEL = "com.docker.compose.service"
CONFIG_LABEL = "com.docker.compose.project.config_files"


def engine_host(api: Any) -> str:
    """Where the engine publishes ports: its host for tcp:// and ssh://, else here."""
    url = str(api.base_url)
    if url.startswith(("http+unix://", "http+docker://", "npipe:")):
        return "127.0.0.1"
    host = urlsplit(url).hostname or "127.0.0.1"
    return "127.0.0.1" if host in ("localhost", "::1") else host


def is_local(api: Any) -> bool:
    return engine_host(api) == "127.0.0.1"


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
        self._thread = threading.Thread(
            target=self._follow,
            args=(streams or api,),
            name=f"pyairtable-events-{project}",
            daemon=True,
        )
        self._thread.start()

    def _follow(self, streams: Any) -> None:
        try:
            with contextlib.suppress(Exception):  # the engine went away: callers inspect
                stream = streams.events(
                    since=self._since,
                    filters={"type": ["container"], "label": [f"{PROJECT_LABEL}={self._project}"]},
                    decode=True,
                )
                with self._cv:
                    self._stream = stream
                    if self._closed:
                        stream.close()
                        return
                for event in stream:
                    self._apply(event)
        finally:
            with self._cv:
                self._open = False
                self._cv.notify_all()

    def _apply(self, event: dict[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        actor = event.get("Actor") or {}
        cid = str(actor.get("ID") or event.get("id") or "")
        attributes = actor.get("Attributes") or {}
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


# How much later than its writing a line may be stamped (the engine reads the container's
# pipe when it gets the CPU): <= 18 ms measured beside ten spinning processes on 2 cores.
ENGINE_LAG = 0.1


class LogFollower:
    """A container's output, appended to a file as it comes, through the API. A kept
    stack's container goes on after pytest: ``hand_over`` passes the file on to a
    ``docker logs -f`` process from where this follower stopped."""

    def __init__(
        self,
        streams: Any,
        cid: str,
        path: Path,
        since: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        next_run: Callable[[], bool] | None = None,
        precise_stamps: bool = True,
        written: int = 0,
    ) -> None:
        self.cid = cid
        self.path = path
        self.last = since  # the engine's timestamp of the last line written
        self.environ = dict(environ or {})  # for `docker logs` to reach the same engine
        self._streams = streams
        self._lock = threading.Lock()
        self._closed = False
        self._stream: Any = None
        self._flushed = threading.Condition()
        self._flushed_at = _nanos(since)  # the same, once the line is in the file
        # A container its restart policy starts again: the stream ends with each run,
        # and this says when the next one has begun (False: no more runs to follow).
        self.next_run = next_run
        # Stamps in whole seconds (Podman): a stream from the last line's stamp repeats
        # that second's lines; those written already (``written``, for a follower that
        # goes on from another's) are skipped.
        self._precise = precise_stamps
        self.repeated = written if since else 0  # lines written with the stamp ``last``
        self._skip = 0 if precise_stamps else self.repeated
        self._thread = threading.Thread(
            target=self._follow, name=f"pyairtable-logs-{cid[:12]}", daemon=True
        )
        self._thread.start()

    def _open(self, since: str | None, *, follow: bool = True) -> Any:
        """The log request (a follow, or one last read), made here: Podman answers a follow
        (even its headers) only with the container's first line, and a silent service
        must not hold its launch."""
        kwargs: dict[str, Any] = {"since": float(_after(since))} if since else {}
        stream = self._streams.logs(self.cid, stream=True, follow=follow, timestamps=True, **kwargs)
        with self._lock:
            self._stream = stream
            if self._closed:  # closed while the engine had not answered
                stream.close()
                return None
        return stream

    def _follow(self) -> None:
        with contextlib.suppress(Exception), open_private(self.path, "ab") as out:
            follow = True
            while True:
                stream = self._open(self.last, follow=follow)
                if stream is None:
                    break
                self._copy(stream, out)
                if self._closed or self.next_run is None or not follow:
                    break
                self._skip = 0 if self._precise else self.repeated
                # Its policy's last run may have come and gone while this stream ended
                # (it follows one run): what it printed is read once more, without follow.
                follow = self.next_run()
        with self._flushed:
            self._flushed.notify_all()  # the follower ended: nothing more will come

    def _copy(self, stream: Any, out: Any) -> None:
        pending = b""
        for chunk in stream:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._write(out, line + b"\n")
            out.flush()
            self._written()
        if pending:
            self._write(out, pending)
            out.flush()
            self._written()

    def _written(self) -> None:
        with self._flushed:
            self._flushed_at = _nanos(self.last)
            self._flushed.notify_all()

    def _write(self, out: Any, line: bytes) -> None:
        raw, _, text = line.partition(b" ")
        if not (raw[:2].isdigit() and raw.endswith(b"Z")):  # a driver's message: whole
            out.write(line)
            return
        stamp = raw.decode()
        if stamp == self.last and self._skip:  # written already (a stamp in seconds)
            self._skip -= 1
            return
        self._skip = 0
        self.repeated = self.repeated + 1 if stamp == self.last else 1
        self.last = stamp
        out.write(text)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def reach(self, moment: float) -> None:
        """Until all the container wrote before ``moment`` (wall clock) is in the engine's
        log: a line is stamped when the engine reads it from the container's pipe, up to
        ``ENGINE_LAG`` later. Once a line stamped after that is in the file, or that time
        has passed, no earlier one is still on its way (a pipe keeps its order)."""
        settled = int((moment + ENGINE_LAG) * 1e9)
        with self._flushed:
            self._flushed.wait_for(
                lambda: (
                    (self._flushed_at or 0) >= settled
                    or time.time() * 1e9 >= settled
                    or not self._thread.is_alive()
                ),
                max(0.0, settled / 1e9 - time.time()),
            )

    def catch_up(self, timeout: float) -> None:
        """Until the file holds the newest line the engine has: a follower writes a few
        milliseconds behind the engine (median 7 ms, up to 30 ms measured on a loaded
        machine), and a failed test's report is read sooner than that."""
        # (through the streams' client, with a deadline of its own: that client has none)
        target = _nanos(last_line_stamp(self._streams, self.cid, timeout))
        if target is None:  # no line, or the engine is gone: the file is all there is
            return
        with self._flushed:
            self._flushed.wait_for(
                lambda: (self._flushed_at or 0) >= target or not self._thread.is_alive(),
                timeout,
            )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        # A request the engine never answered ends when the container is removed.
        self._thread.join(2 if stream is not None else 0.1)

    def hand_over(self) -> None:
        """Stop following here; a `docker logs -f` goes on from where this one stopped,
        after pytest and its Ctrl-C (not our child: in its own session, under init)."""
        self.close()
        docker = shutil.which("docker")
        if docker is None:
            return
        since = ["--since", _after(self.last)] if self.last else []
        try:  # opened here, as every log is: never through a link a shell would follow
            log = open_private(self.path, "ab")
        except OSError:
            return
        with log:
            subprocess.run(
                [
                    "/bin/sh",
                    "-c",
                    'exec "$@" </dev/null &',
                    "sh",
                    docker,
                    "logs",
                    "-f",
                    *since,
                    self.cid,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                check=False,
                timeout=30,
                env={**os.environ, **self.environ},
            )


def last_line_stamp(api: Any, cid: str, timeout: float | None = None) -> str | None:
    """The engine's stamp of the container's newest log line; None if it has none (or
    the engine does not answer, within ``timeout`` if given)."""
    bound = {} if timeout is None else {"timeout": timeout}
    try:  # (the SDK's logs() inspects the container first: twice the time)
        answer = api._get(
            api._url("/containers/{0}/logs", cid),
            params={"stdout": 1, "stderr": 1, "tail": "1", "timestamps": 1},
            **bound,
        )
        api._raise_for_status(answer)
        newest = answer.content
    except Exception:
        return None
    if newest[:1] in (b"\0", b"\1", b"\2") and newest[1:4] == b"\0\0\0":
        newest = newest[8:]  # a frame of a container without a tty: its header
    stamp = newest.partition(b" ")[0].decode(errors="replace")
    return stamp if _nanos(stamp) is not None else None


def latest_stamp(*stamps: str | None) -> str | None:
    """The latest of engine timestamps (their text does not sort)."""
    known = [s for s in stamps if _nanos(s) is not None]
    return max(known, key=lambda s: _nanos(s) or 0) if known else None


def _nanos(stamp: str | None) -> int | None:
    """An engine timestamp (RFC 3339, up to nanoseconds) as nanoseconds since the epoch;
    None for anything else. (Its text does not sort: the engine drops trailing zeros.)"""
    if not stamp or not stamp.endswith("Z") or not stamp[:4].isdigit():
        return None
    whole, _, fraction = stamp[:-1].partition(".")
    try:
        moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc)
        return int(moment.timestamp()) * 1_000_000_000 + int((fraction + "000000000")[:9])
    except ValueError:
        return None


def _after(stamp: str | None) -> str:
    """Just after an engine timestamp (RFC 3339, nanoseconds), as seconds since the
    epoch: `docker logs --since` includes lines at the instant it is given."""
    if not stamp:
        return "0"
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc)
    micros = int((fraction + "000000")[:6]) + 1
    return f"{int(moment.timestamp()) + micros // 1_000_000}.{micros % 1_000_000:06d}"
