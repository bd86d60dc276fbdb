"""A one-line live progress display for `pyairtable up` on a terminal (CI gets the
plain line-per-event output only): services ready, waiting and starting, and the images
still being pulled (layers, bytes) or built (the step)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # (every command imports this module; only `up` boots anything)
    from ...engine.orchestrator import Orchestrator

CLEAR = "\r\033[K"


def wanted(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("CI") and os.environ.get("TERM") != "dumb"


class TtyProgress:
    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, orch: Orchestrator) -> None:
        from ...engine.orchestrator import State

        runs = list(orch.runs.values())
        ready = sum(r.state in (State.READY, State.COMPLETED) for r in runs)
        starting = [r.name for r in runs if r.state in (State.STARTING, State.RUNNING)]
        waiting = sum(r.state is State.PENDING for r in runs)
        text = (
            f"[{ready}/{len(runs)} ready, {waiting} waiting, "
            f"{time.monotonic() - self.started:.1f}s] starting: {', '.join(starting) or '-'}"
        )
        # pulls and builds still running: each image's layers and bytes (a build's step)
        fetching = [f.live() for f in orch.backend.fetches() if not f.done]
        if fetching:
            text += " | " + "; ".join(fetching)
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write(CLEAR + text[:width])
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write(CLEAR)
            self.stream.flush()
            self.shown = False
