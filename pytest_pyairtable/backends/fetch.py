"""What a service needs on this machine before it can start, being fetched: its image,
pulled from its registry or built from its context. One ``Fetch`` per image, shared by the
services that run it, begun when the stack is prepared (not when its first service may
start), in parallel with the others and with the boot.

Its fields change while it runs, from its worker thread; a live display reads them from
another (single values, read whole). ``wait`` until it has ended; ``error`` then says why
it failed, for any service that runs it to put its own name before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from pathlib import Path

KINDS = ("pull", "build")


def megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


class Fetch:
    def __init__(self, kind: str, image: str, services: Iterable[str] = ()) -> None:
        assert kind in KINDS
        self.kind = kind
        self.image = image
        self.label = image  # as shown: a name compose made up for one run reads as "api's image"
        self.services: list[str] = list(services)
        self.began = time.monotonic()
        self.ended: float | None = None
        self.error: str | None = None  # why it failed: "could not pull its image x: ..."
        self.fix = ""  # what to do about it
        self.log_path: Path | None = None  # where its output went (a build's)
        self.outcome = ""  # e.g. "pulled", "up to date", "built", "reused"
        self.layers_done = 0
        self.layers_total = 0
        self.bytes_done = 0
        self.bytes_total = 0  # 0: the engine does not say (Podman's pulls)
        self.step = ""  # a build's step, e.g. "3/7"
        self._done = threading.Event()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def seconds(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.began

    def wait(self, timeout: float | None = None) -> bool:
        """Until it has ended (failed or not); False when ``timeout`` passed first."""
        return self._done.wait(timeout)

    def finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.ended = time.monotonic()
        self._done.set()

    def fail(self, cause: str, fix: str) -> None:
        self.error, self.fix = cause, fix
        self.outcome = "failed"
        self.ended = time.monotonic()
        self._done.set()

    def progress(self) -> str:
        """How far it is, in a few words: layers and bytes of a pull, a build's step."""
        if self.kind == "build":
            return f"step {self.step}" if self.step else "starting"
        parts = []
        if self.layers_total:
            parts.append(f"{self.layers_done}/{self.layers_total} layers")
        if self.bytes_total:
            parts.append(f"{self.bytes_done / 1e6:.1f}/{megabytes(self.bytes_total)}")
        return ", ".join(parts) or "asking the registry"

    def live(self) -> str:
        """One line while it runs: "pulling app:1 2/5 layers, 3.1/9.0 MB"."""
        verb = "pulling" if self.kind == "pull" else "building"
        return f"{verb} {self.label} {self.progress()}"

    def summary(self) -> str:
        """One line once it ended: "pulled app:1 in 2.31s (5 layers, 9.0 MB)"."""
        if self.error is not None:
            return f"{self.kind} of {self.label} failed after {self.seconds:.2f}s"
        details = []
        if self.layers_total:
            details.append(f"{self.layers_total} layers")
        if self.bytes_total:
            details.append(megabytes(self.bytes_total))
        detail = f" ({', '.join(details)})" if details and self.outcome == "pulled" else ""
        if self.outcome == "reused":
            detail = " (its context is unchanged)"
        return f"{self.outcome} {self.label} in {self.seconds:.2f}s{detail}"
