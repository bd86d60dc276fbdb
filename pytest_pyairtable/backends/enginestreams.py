"""The Engine API's long-lived streams (a followed log, the event stream), closed for good.

The SDK's ``close`` of a stream (docker-py's CancellableStream) shuts its socket down
and closes the socket object, but not the response's file over that socket (its
``makefile``), which holds the fd: the thread reading the stream wakes, reads its end,
and that end closes the file. A stream nobody reads after its close keeps its fd: one
closed before its first read (the engine answered a log follower or the events
subscription only after the run closed it: ~20 ms after the answer, a run's close comes,
and a loaded machine starves a stream's thread that long), or one its reader gave up
(an error while applying an event). That fd goes only once the garbage collector meets
the stream; in a cycle (a follower and its service refer to each other), the socket
object may be finalized before the file and warn, ``ResourceWarning: unclosed
<socket.socket [closed] fd=...>``: under ``-W error``, an error in whatever test runs
then.

So the client of those streams (engines.stream_client) hands out streams whose close ends
them for good: their response is closed by their reader once it has read the end (or
failed), and by ``close`` itself where no read is under way. (Closing the response under a
read would pull its file from under the reader: the shutdown ends that read, and the
reader closes the response then.)
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any


class ClosingStream:
    """An SDK stream whose ``close`` (from any thread) releases its connection's fd."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream  # the SDK's CancellableStream
        self._lock = threading.Lock()
        self._reading = False
        self._closed = False

    def __iter__(self) -> ClosingStream:
        return self

    def __next__(self) -> Any:
        with self._lock:
            if self._closed:
                raise StopIteration
            self._reading = True
        ended = False
        try:
            return next(self.stream)
        except BaseException:  # its end (the SDK's StopIteration), or a failed read
            ended = True
            raise
        finally:
            with self._lock:
                self._reading = False
                ended = ended or self._closed
            if ended:  # nothing more is read from it
                self._release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            reading = self._reading
            with contextlib.suppress(Exception):
                self.stream.close()  # its socket shut down: a read under way ends now
        if not reading:
            self._release()

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self.stream._response.close()  # the file over the socket, and with it the fd


@functools.cache
def streams_client_class() -> type[Any]:
    """docker.APIClient whose streamed logs and events are ``ClosingStream``s (made on
    first use: the SDK takes ~0.25 s to import)."""
    import docker
    from docker.types import CancellableStream

    class StreamsClient(docker.APIClient):  # type: ignore[misc]
        def logs(self, *args: Any, **kwargs: Any) -> Any:
            got = super().logs(*args, **kwargs)
            return ClosingStream(got) if isinstance(got, CancellableStream) else got

        def events(self, *args: Any, **kwargs: Any) -> Any:
            got = super().events(*args, **kwargs)
            return ClosingStream(got) if isinstance(got, CancellableStream) else got

    return StreamsClient
