"""SIGTERM gets Ctrl-C's graceful shutdown: CI runners and IDEs send it on cancel, and
by default Python dies on it without running any clean-up."""

from __future__ import annotations

import contextlib
import signal
from typing import Any


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def install_sigterm_handler() -> Any:
    """Install only over the default handler, and only from the main thread."""
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None
    try:
        return signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    except ValueError:  # not the main thread
        return None


def restore_sigterm_handler(previous: Any) -> None:
    if previous is None or signal.getsignal(signal.SIGTERM) is not _sigterm_as_interrupt:
        return
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, previous)
