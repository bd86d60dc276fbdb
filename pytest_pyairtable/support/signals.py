"""Signals a run must answer gracefully.

SIGTERM gets Ctrl-C's graceful shutdown: CI runners and IDEs send it on cancel, and
by default Python dies on it without running any clean-up. The handler can only be
installed from the main thread, so each front end installs it there when it starts
(under xdist: the controller, which owns the stack), never from a worker's thread.

A stop that has begun is not cut short by a second Ctrl-C or a SIGTERM: ``shielded``
holds them off until the stack is down (the stop is bounded by each service's grace
period, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install_sigterm_handler() -> Any:
    """Install over the default handler, from the main thread; return what to restore
    (None when nothing was installed: another handler is in place)."""
    if not _main_thread():
        raise RuntimeError("the SIGTERM handler can only be installed from the main thread")
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, _sigterm_as_interrupt)


def restore_sigterm_handler(previous: Any) -> None:
    if previous is None or signal.getsignal(signal.SIGTERM) is not _sigterm_as_interrupt:
        return
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold off SIGINT and SIGTERM while a stop runs (from the main thread; elsewhere
    signals are not delivered anyway)."""
    if not _main_thread():
        yield
        return
    held = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, handler in held.items():
        if handler not in (signal.SIG_IGN, None):
            signal.signal(sig, lambda signum, frame: None)
    try:
        yield
    finally:
        for sig, handler in held.items():
            if handler is not None:
                signal.signal(sig, handler)
