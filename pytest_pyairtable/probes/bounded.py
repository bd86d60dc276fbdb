"""The limits every probe attempt keeps: a deadline, a cap on what it reads, and the
run's cancellation, checked while it waits.

An attempt never blocks for longer than ``SLICE`` without looking at the clock and at
whether the run is stopping, so a Ctrl-C or a spent budget ends it within ``SLICE``
(a probe runs on a service's thread, which the stop joins: a read that never returned
kept the whole run from stopping). ``http_get`` is the HTTP probe's request on these
terms: the standard library's parser over a socket read in slices, the body read up to
a cap (a service streaming an endless body grew the run by ~650 MB/s).
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

SLICE = 0.05  # the longest a probe waits without looking at its deadline and the run
BODY_CAP = 1024 * 1024  # the most an HTTP probe reads of a response body (1 MiB)
_BODY_SHOWN = 200  # what an error quotes of a body


class AttemptEnded(Exception):
    """The attempt ran out of time, or the run is stopping; the message says which."""


class BodyTooLarge(Exception):
    """The response body is larger than the cap."""


@dataclass
class Limits:
    """One attempt's deadline (``time.monotonic``) and the run's cancellation."""

    deadline: float
    cancelled: Callable[[], bool]
    seconds: float  # the attempt's whole allowance, for messages

    @classmethod
    def start(cls, seconds: float, cancelled: Callable[[], bool]) -> Limits:
        return cls(time.monotonic() + seconds, cancelled, seconds)

    def left(self) -> float:
        """Seconds left, at most ``SLICE``; raise AttemptEnded when none are."""
        if self.cancelled():
            raise AttemptEnded("cancelled: the run is stopping")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise AttemptEnded(f"the attempt ran out of its {self.seconds:g}s")
        return min(left, SLICE)


class _SlicedReader(io.RawIOBase):
    """A socket's bytes, each receive bounded by the attempt's limits. A raw receive
    that times out leaves the socket usable (the standard library's socket file does
    not: after one timeout it refuses every later read)."""

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        self.sock = sock
        self.limits = limits
        # Holds the socket open while the response reads, as the socket's own file does
        # (http.client closes its connection early when the server will close it).
        self._hold = sock.makefile("rb", buffering=0)

    def close(self) -> None:
        self._hold.close()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while True:
            self.sock.settimeout(self.limits.left())
            try:
                return self.sock.recv_into(buffer)
            except TimeoutError:  # socket.timeout: one slice passed with nothing
                continue


class _SocketView:
    """What ``http.client.HTTPResponse`` takes for a socket: only ``makefile``."""

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        self.sock = sock
        self.limits = limits

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_SlicedReader(self.sock, self.limits))


@dataclass
class Response:
    status: int
    body: bytes  # whole (within the cap) when asked for, else what an error quotes
    charset: str


def http_get(
    host: str,
    port: int | None,
    path: str,
    headers: Mapping[str, str],
    limits: Limits,
    *,
    https: bool = False,
    body: bool = True,
    cap: int = BODY_CAP,
) -> Response:
    """One GET on a fresh connection, within ``limits``. The body is read whole (up to
    ``cap``) only when ``body``; else only as much as an error quotes.
    Raises AttemptEnded, BodyTooLarge, or the transport's OSError / HTTPException."""
    timeout = max(0.001, limits.deadline - time.monotonic())
    if https:
        import ssl

        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    # The parser reads through our sliced reader; connecting and sending the request
    # keep the attempt's whole timeout (both are short on loopback).
    conn.response_class = lambda sock, **kw: http.client.HTTPResponse(  # type: ignore[assignment]
        cast(socket.socket, _SocketView(sock, limits)), **kw
    )
    try:
        conn.request("GET", path, headers=dict(headers))
        with conn.getresponse() as response:
            charset = response.headers.get_content_charset() or "utf-8"
            want = cap if body else _BODY_SHOWN
            return Response(response.status, _read_body(response, want, whole=body), charset)
    finally:
        conn.close()


def _read_body(response: http.client.HTTPResponse, want: int, *, whole: bool) -> bytes:
    """Up to ``want`` bytes; with ``whole``, the body must end within them (BodyTooLarge)."""
    parts: list[bytes] = []
    got = 0
    limit = want + 1 if whole else want  # one byte more tells a body over the cap
    while got < limit:
        data = response.read(min(64 * 1024, limit - got))
        if not data:
            break
        parts.append(data)
        got += len(data)
    if whole and got > want:
        raise BodyTooLarge(f"the response body exceeded {want} bytes")
    return b"".join(parts)[:want]
