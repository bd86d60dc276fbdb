"""One stack for many processes: the owner serves handles over a Unix socket.

Under pytest-xdist the controller owns the stack (it outlives every worker, so it can
tear down once, after the last); workers ask it for a service and wait for the
answer. Requests carry the worker's collected closure, so the stack is still only
what the tests need. Each request is one JSON line naming its ``op``; so is each
answer. The socket's directory carries an ownership marker: a killed controller's is
removed by the next controller that proves it stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backends import ownership
from .engine.handle import Handle, handle_from_json, handle_to_json
from .errors import PyAirtableError, RemoteError

Serve = Callable[[str, list[str]], Handle]  # (service, needed) -> handle, raising on failure
FirstReport = Callable[[PyAirtableError, str], str]  # (error, nodeid) -> first reporter


class StackServer:
    def __init__(self, serve: Serve, first_report: FirstReport, run_id: str = "") -> None:
        self._serve = serve
        self._first_report = first_report
        # A short path: Unix socket paths are limited to about 100 bytes.
        base = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir())
        ownership.sweep([base])
        self._dir = str(
            ownership.make_dir(base, f"pyairtable-sock-{os.getpid()}-", run_id, "socket")
        )
        self.path = os.path.join(self._dir, "stack.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        os.chmod(self.path, 0o600)
        self._sock.listen(64)
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._closed = False
        accept = threading.Thread(target=self._accept, name="pyairtable-share", daemon=True)
        self._threads = [accept]
        accept.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            thread = threading.Thread(target=self._converse, args=(conn,), daemon=True)
            with self._lock:
                self._conns.append(conn)
                self._threads.append(thread)
                if self._closed:  # accepted just as close() went through the list
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RD)
            thread.start()

    def _converse(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn, conn.makefile("rwb") as stream:
            for line in stream:
                answer = self._answer(json.loads(line))
                stream.write(json.dumps(answer).encode() + b"\n")
                stream.flush()

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        nodeid = str(request.get("nodeid", ""))
        try:
            if request.get("op", "handle") != "handle":
                raise PyAirtableError(f"pyairtable: unknown request {request.get('op')!r}")
            return {
                "ok": True,
                "handle": handle_to_json(self._serve(request["service"], request["needed"])),
            }
        except Exception as exc:  # every failure goes back to the worker, as text
            if not isinstance(exc, PyAirtableError):
                exc = PyAirtableError(f"pyairtable: internal error in the stack owner: {exc!r}")
            with self._lock:
                first = self._first_report(exc, nodeid)
            return {
                "ok": False,
                "text": str(exc),
                "headline": exc.headline(),
                "first": None if first == nodeid else first,
            }

    def close(self) -> None:
        """Take no new request: end the accept loop and every worker's connection (an
        answer being computed is still sent, if its worker listens)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        with contextlib.suppress(OSError):
            self._sock.close()
        with self._lock:
            self._closed = True
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RD)
        shutil.rmtree(self._dir, ignore_errors=True)

    def join(self, timeout: float = 60) -> None:
        """Wait until no thread of ours is left (after the stack stopped, none waits)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class StackClient:
    """A worker's side: one connection, one request at a time (fixtures are sequential)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stream: Any = None
        self._errors: dict[str, RemoteError] = {}

    def handle(self, service: str, needed: list[str], nodeid: str) -> Handle:
        if service in self._errors:  # a copy of one error: reported once here too
            raise self._errors[service].fresh()
        if self._stream is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.path)
            self._stream = sock.makefile("rwb")
        request = {"op": "handle", "service": service, "needed": needed, "nodeid": nodeid}
        self._stream.write(json.dumps(request).encode() + b"\n")
        self._stream.flush()
        line = self._stream.readline()
        if not line:
            raise RemoteError(
                "pyairtable: the process owning the stack went away",
                "pyairtable: the process owning the stack went away",
            )
        answer = json.loads(line)
        if answer["ok"]:
            return handle_from_json(answer["handle"])
        error = RemoteError(answer["text"], answer["headline"], answer["first"])
        self._errors[service] = error
        raise error.fresh()

    def close(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.close()
