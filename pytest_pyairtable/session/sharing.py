"""One stack for many processes: the owner serves handles over a Unix socket.

Under pytest-xdist the controller owns the stack (it outlives every worker, so it can
tear down once, after the last); workers ask it for a service and wait for the
answer. Requests carry the worker's collected closure, so the stack is still only
what the tests need. Each request is one JSON line naming its ``op`` (handle, lease,
fault, reset: see owner.py); each answer is one line too. Each connection is one
holder of a lease: when it drops (the worker crashed), what it broke is healed and
its lease released. The socket's directory carries an ownership marker: a killed
controller's is removed by the next controller that proves it stale.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import markers
from ..engine.handle import Handle, handle_from_json, handle_to_json
from ..support.errors import PyAirtableError, RemoteError
from .lease import HolderGone

if TYPE_CHECKING:
    from .owner import StackOwner

FirstReport = Callable[[PyAirtableError, str], str]  # (error, nodeid) -> first reporter


class StackServer:
    def __init__(self, owner: StackOwner, first_report: FirstReport, run_id: str = "") -> None:
        self._owner = owner
        self._first_report = first_report
        self._holders = itertools.count(1)
        # A short path: Unix socket paths are limited to about 100 bytes.
        base = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir())
        stack = markers.Owner.of(owner.runtime.compose_file)
        markers.sweep([base], stack)
        made = markers.make_dir(base, f"pyairtable-sock-{os.getpid()}-", run_id, "socket", stack)
        self._dir = str(made)
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
        holder = f"worker-{next(self._holders)}"
        try:
            with conn, conn.makefile("rwb") as stream:
                for line in stream:
                    answer = self._answer(holder, json.loads(line), lambda: _gone(conn))
                    stream.write(json.dumps(answer).encode() + b"\n")
                    stream.flush()
        except OSError:
            pass  # the worker went away mid-answer: the same as after it
        finally:
            self._owner.drop(holder)  # heal what it broke, release its lease

    def _answer(
        self, holder: str, request: dict[str, Any], gone: Callable[[], bool]
    ) -> dict[str, Any]:
        nodeid = str(request.get("nodeid", ""))
        try:
            return {"ok": True, "value": self._dispatch(holder, request, gone)}
        except HolderGone:
            return {"ok": False, "text": "gone", "headline": "gone", "first": None}
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

    def _dispatch(self, holder: str, request: dict[str, Any], gone: Callable[[], bool]) -> Any:
        owner, op = self._owner, request.get("op")
        resets = [str(n) for n in request.get("resets", ())]
        slot = str(request.get("slot") or "")  # the worker's own databases (isolation.py)
        if op == "handle":
            handle = owner.handle(
                request["service"],
                request["needed"],
                resets,
                main_thread=False,
                holder=holder,
                slot=slot,
            )
            return handle_to_json(handle)
        if op == "lease":
            return owner.lease(holder, request["mode"], str(request["label"]), gone)
        if op == "fault":
            broken = owner.fault(holder, request["action"], request["service"])
            return handle_to_json(broken) if broken is not None else None
        if op == "reset":
            names, needed = request["services"], request["needed"]
            pid = request.get("pid")
            return owner.reset(
                holder,
                names,
                needed,
                resets,
                main_thread=False,
                slot=slot,
                pid=pid if isinstance(pid, int) else None,
            )
        if op == "logs":
            moment = request.get("moment")
            return owner.test_logs(
                request["marks"],
                int(request["lines"]),
                float(moment) if isinstance(moment, (int, float)) else None,
            )
        raise PyAirtableError(f"pyairtable: unknown request {op!r}")

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

    def interrupt(self) -> None:
        """Ctrl-C or SIGTERM: end every worker's wait at once (its request fails). xdist
        tears its workers down before the stack stops, and gives one blocked in a
        request (its test's fixture waiting for the boot) 10 s before it kills it."""
        self.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def join(self, timeout: float = 60) -> None:
        """Wait until no thread of ours is left (after the stack stopped, none waits)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _gone(conn: socket.socket) -> bool:
    """Whether the worker closed its end (it waits for our answer, so it sends nothing)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class StackClient:
    """A worker's side: one connection, one request at a time (fixtures are sequential)."""

    def __init__(self, path: str, slot: str = "") -> None:
        self.path = path
        self.slot = slot  # the worker's slot, for its own databases ("": it has none)
        self.resets: list[str] = []  # what the collected tests will reset
        self._stream: Any = None
        self._closed = False
        self._errors: dict[str, RemoteError] = {}

    def handle(self, service: str, needed: list[str], nodeid: str) -> Handle:
        if service in self._errors:  # a copy of one error: reported once here too
            raise self._errors[service].fresh()
        request = {"service": service, "needed": needed, "nodeid": nodeid}
        try:
            return handle_from_json(self._call("handle", request))
        except RemoteError as error:
            self._errors[service] = error
            raise error.fresh() from None

    def lease(self, mode: str, label: str) -> None:
        if self._closed:
            return  # the session ended (its last teardown): the owner released it
        self._call("lease", {"mode": mode, "label": label})

    def fault(self, action: str, service: str, nodeid: str = "") -> Handle | None:
        """``nodeid``: the test, named by the failure reports that point at its own."""
        value = self._call("fault", {"action": action, "service": service, "nodeid": nodeid})
        return handle_from_json(value) if value is not None else None

    def reset(self, services: list[str] | None, needed: list[str]) -> list[str]:
        return [str(n) for n in self._call("reset", {"services": services, "needed": needed})]

    def test_logs(
        self, marks: Mapping[str, int], lines: int, moment: float | None = None
    ) -> dict[str, str]:
        """The owner reads them: it settles the logs that reach their files late."""
        texts = self._call("logs", {"marks": dict(marks), "lines": lines, "moment": moment})
        return {str(name): str(text) for name, text in texts.items()}

    def _call(self, op: str, request: dict[str, Any]) -> Any:
        if self._stream is None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(self.path)
                # the file keeps the connection open until it is closed itself; a socket
                # object left unclosed is a ResourceWarning, an error in a strict suite
                self._stream = sock.makefile("rwb")
        head = {"op": op, "resets": self.resets, "slot": self.slot, "pid": os.getpid()}
        line = json.dumps({**head, **request}).encode()
        self._stream.write(line + b"\n")
        self._stream.flush()
        answer = self._stream.readline()
        if not answer:
            gone = "pyairtable: the process owning the stack went away"
            raise RemoteError(gone, gone)
        data = json.loads(answer)
        if data["ok"]:
            return data["value"]
        raise RemoteError(data["text"], data["headline"], data["first"])

    def close(self) -> None:
        self._closed = True
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.close()
