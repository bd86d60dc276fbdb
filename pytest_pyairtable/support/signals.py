"""Signals a run must answer gracefully.

SIGTERM gets Ctrl-C's graceful shutdown: CI runners and IDEs send it on cancel, and
by default Python dies on it without running any clean-up. The handler can only be
installed from the main thread, so each front end installs it there when it starts
(under xdist: the controller, which owns the stack), never from a worker's thread.

A stop that has begun is not cut short by a second Ctrl-C or a SIGTERM: ``shielded``
holds them off until the stack is down, and hands each to ``on_signal``, which says so and
hurries the stop along (what is still stopping is killed at once, as compose's second
Ctrl-C forces it), instead of a wait up to each service's grace period with no word.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
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
def shielded(on_signal: Callable[[int], None] | None = None) -> Iterator[None]:
    """Hold off SIGINT and SIGTERM while a stop runs (from the main thread; elsewhere
    signals are not delivered anyway), each handed to ``on_signal`` instead."""
    if not _main_thread():
        yield
        return

    def held_off(signum: int, frame: object) -> None:
        if on_signal is not None:
            on_signal(signum)

    held = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, handler in held.items():
        if handler not in (signal.SIG_IGN, None):
            signal.signal(sig, held_off)
    try:
        yield
    finally:
        for sig, handler in held.items():
            if handler is not None:
                signal.signal(sig, handler)
