"""The Docker Engine through its API (the ``docker`` SDK, docker-py): one client per run,
the project's container events followed in one stream, and container logs followed
into files. Typed errors, no CLI process per call, no text to parse.

The engine is the one DOCKER_HOST names (with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH),
else the current docker context's, as the docker CLI and compose choose it.
State comes from the event stream (start, die, health_status, destroy) as it happens;
an inspect is a fallback for a container whose events were not seen (a kept stack's).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..support.errors import PrerequisiteError
from ..support.files import open_private

PROJECT_LABEL = "com.docker.compose.project"
LIVE_STATES = ("running", "paused", "restarting")  # a container whose processes exist
SERVICE_LABEL = "com.docker.compose.service"
CONFIG_LABEL = "com.docker.compose.project.config_files"
API_TIMEOUT = 60.0
POOL_SIZE = 64  # one connection per log stream, the event stream, and calls beside them


def connect() -> Any:
    """An API client for the engine the docker CLI would use; a PrerequisiteError saying
    how to fix it when none answers."""
    try:
        import docker
        from docker.context import ContextAPI
    except ImportError:
        raise PrerequisiteError(
            "the compose backend needs the docker SDK (docker-py). "
            "Fix: pip install 'pytest-pyairtable[docker]'."
        ) from None
    options: dict[str, Any] = docker.utils.kwargs_from_env()
    if "base_url" not in options:
        name = os.environ.get("DOCKER_CONTEXT") or None
        with contextlib.suppress(Exception):  # a broken context file: the default socket
            found = ContextAPI.get_context(name)
            if found is not None and found.Host:
                options["base_url"] = found.Host
                if found.TLSConfig:
                    options["tls"] = found.TLSConfig
    where = options.get("base_url") or "unix:///var/run/docker.sock"
    refused = _unix_refusal(where)
    api = None
    try:
        if refused:  # docker-py would leak the socket of a failed connect: look first
            raise OSError(refused)
        api = docker.APIClient(
            version="auto", timeout=API_TIMEOUT, max_pool_size=POOL_SIZE, **options
        )
        api.ping()
    except Exception as exc:  # DockerException, requests' errors: all mean "no engine"
        if api is not None:
            api.close()
        raise PrerequisiteError(
            f"no Docker engine answers (DOCKER_HOST or the current context) at {where}: "
            f"{str(exc)[:200]}. Fix: start the engine, or use the local backend."
        ) from None
    return api


def _unix_refusal(url: str) -> str | None:
    """Why a unix:// engine socket does not accept a connection, or None if it does."""
    if not url.startswith("unix://"):
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(url.removeprefix("unix://"))
        except OSError as exc:
            return f"{url}: {exc.strerror or exc}"
    return None


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

    def __init__(self, api: Any, project: str) -> None:
        self._cv = threading.Condition()
        self._state: dict[str, dict[str, Any]] = {}
        self._created: dict[str, str] = {}  # service -> its latest container
        self._project = project
        self._open = True
        self._stream = api.events(
            filters={"type": ["container"], "label": [f"{PROJECT_LABEL}={project}"]},
            decode=True,
        )
        self._thread = threading.Thread(
            target=self._follow, name=f"pyairtable-events-{project}", daemon=True
        )
        self._thread.start()

    def _follow(self) -> None:
        try:
            with contextlib.suppress(Exception):  # the engine went away: callers inspect
                for event in self._stream:
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
            elif action == "destroy":
                state.update(running=False, removed=True)
                state.setdefault("exit_code", -1)
            self._cv.notify_all()

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
        with contextlib.suppress(Exception):
            self._stream.close()
        self._thread.join(5)


class LogFollower:
    """A container's output, appended to a file as it comes, through the API. A kept
    stack's container goes on after pytest: ``hand_over`` passes the file on to a
    ``docker logs -f`` process from where this follower stopped."""

    def __init__(
        self,
        api: Any,
        cid: str,
        path: Path,
        since: str | None = None,
        next_run: Callable[[], bool] | None = None,
    ) -> None:
        self.cid = cid
        self.path = path
        self.last = since  # the engine's timestamp of the last line written
        self._api = api
        self._closed = False
        self._flushed = threading.Condition()
        self._flushed_at = _nanos(since)  # the same, once the line is in the file
        # A container its restart policy starts again: the stream ends with each run,
        # and this says when the next one has begun (False: no more runs to follow).
        self.next_run = next_run
        self._stream = self._open()
        self._thread = threading.Thread(
            target=self._follow, name=f"pyairtable-logs-{self.cid[:12]}", daemon=True
        )
        self._thread.start()

    def _open(self) -> Any:
        kwargs: dict[str, Any] = {"since": float(_after(self.last))} if self.last else {}
        return self._api.logs(self.cid, stream=True, follow=True, timestamps=True, **kwargs)

    def _follow(self) -> None:
        with contextlib.suppress(Exception), open_private(self.path, "ab") as out:
            while True:
                pending = b""
                for chunk in self._stream:
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
                if self._closed or self.next_run is None or not self.next_run():
                    break
                self._stream = self._open()
        with self._flushed:
            self._flushed.notify_all()  # the follower ended: nothing more will come

    def _written(self) -> None:
        with self._flushed:
            self._flushed_at = _nanos(self.last)
            self._flushed.notify_all()

    def _write(self, out: Any, line: bytes) -> None:
        stamp, _, text = line.partition(b" ")
        if stamp[:2].isdigit() and stamp.endswith(b"Z"):
            self.last = stamp.decode()
            out.write(text)
        else:  # not a stamped line (a driver's message): keep it whole
            out.write(line)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def catch_up(self, timeout: float) -> None:
        """Until the file holds the newest line the engine has: a follower writes a few
        milliseconds behind the engine (median 7 ms, up to 30 ms measured on a loaded
        machine), and a failed test's report is read sooner than that."""
        target = _nanos(last_line_stamp(self._api, self.cid))
        if target is None:  # no line, or the engine is gone: the file is all there is
            return
        with self._flushed:
            self._flushed.wait_for(
                lambda: (self._flushed_at or 0) >= target or not self._thread.is_alive(),
                timeout,
            )

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(Exception):
            self._stream.close()
        self._thread.join(2)

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
            )


def last_line_stamp(api: Any, cid: str) -> str | None:
    """The engine's stamp of the container's newest log line; None if it has none (or
    the engine does not answer)."""
    try:  # (the SDK's logs() inspects the container first: twice the time)
        answer = api._get(
            api._url("/containers/{0}/logs", cid),
            params={"stdout": 1, "stderr": 1, "tail": "1", "timestamps": 1},
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
