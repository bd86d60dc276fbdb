"""The engine through its API (the ``docker`` SDK, docker-py): container logs followed
into files. Typed errors, no CLI process per call, no text to parse. Which engine, and
how it differs: engines.py; the project's container events: containerstates.py.

A log stream is opened in its own thread, on a client without a read deadline: an
engine may hold a stream's headers back until its first line.
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
