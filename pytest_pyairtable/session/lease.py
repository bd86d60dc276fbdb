"""Who may use the stack right now: a shared lease for each test that uses it, an
exclusive one for a test that breaks or resets it (``pyairtable_faults``, a reset).

The process owning the stack keeps one ``LeaseTable``; every process running tests is
a holder (an xdist worker, by its connection; without xdist, the one process). A holder
has at most one lease: asking for more changes it. Exclusive requests queue in order
and, once queued, hold back new shared ones, so a stream of ordinary tests on other
workers cannot starve a fault test. A shared holder asking for exclusive gives its
shared lease up first: two such upgrades each wait for the other's *tests*, never for
each other's leases, so they cannot deadlock; the first queued goes first. A holder
that goes away (its connection dropped) is released by the owner (see owner.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..support.errors import PyAirtableError

SHARED = "shared"
EXCLUSIVE = "exclusive"
MODES = (SHARED, EXCLUSIVE)
_POLL = 0.25  # how often a waiter checks whether its own holder went away


class LeaseTimeout(PyAirtableError):
    """A test waited longer than the lease timeout for its turn with the stack."""


class HolderGone(PyAirtableError):
    """The holder stopped waiting (its connection dropped): nothing to answer."""


@dataclass
class Held:
    mode: str
    label: str  # who and what, for errors: "gw1 tests/test_a.py::test_x"
    since: float  # time.monotonic()


class LeaseTable:
    def __init__(self, timeout: float = 600.0) -> None:
        self.timeout = timeout
        self._cv = threading.Condition()
        self._held: dict[str, Held] = {}
        self._queue: list[str] = []  # holders waiting for exclusive, first come first
        self._waiting: dict[str, str] = {}  # holder -> the mode it waits for

    def acquire(
        self,
        holder: str,
        mode: str,
        label: str,
        *,
        gone: Callable[[], bool] | None = None,
    ) -> None:
        """Hold at least ``mode`` (a holder with exclusive asking for shared keeps it);
        waits up to the timeout, raising LeaseTimeout that names who holds the stack."""
        if mode not in MODES:
            raise PyAirtableError(f"pyairtable: unknown lease mode {mode!r}")
        deadline = time.monotonic() + self.timeout
        with self._cv:
            held = self._held.get(holder)
            if held is not None and held.mode in (mode, EXCLUSIVE):
                held.label = label
                return
            if mode == SHARED:
                self._wait(holder, label, mode, deadline, gone=gone)
            else:
                self._held.pop(holder, None)  # an upgrade: give the shared lease up first
                self._queue.append(holder)
                self._cv.notify_all()
                try:
                    self._wait(holder, label, mode, deadline, gone=gone)
                finally:
                    self._queue.remove(holder)
                    self._cv.notify_all()
            self._held[holder] = Held(mode, label, time.monotonic())

    def _shared_free(self, holder: str) -> bool:
        exclusive = any(h.mode == EXCLUSIVE for h in self._held.values())
        return not exclusive and not self._queue

    def _exclusive_free(self, holder: str) -> bool:
        others = [h for h in self._held if h != holder]
        return not others and self._queue[0] == holder

    def _wait(
        self,
        holder: str,
        label: str,
        mode: str,
        deadline: float,
        *,
        gone: Callable[[], bool] | None,
    ) -> None:
        free = self._shared_free if mode == SHARED else self._exclusive_free
        self._waiting[holder] = mode
        try:
            while not free(holder):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LeaseTimeout(self._timeout_text(holder, label, mode))
                self._cv.wait(min(left, _POLL) if gone is not None else left)
                if gone is not None and gone():
                    raise HolderGone(f"pyairtable: {label} went away while waiting")
        finally:
            del self._waiting[holder]

    def _timeout_text(self, holder: str, label: str, mode: str) -> str:
        now = time.monotonic()
        holders = [
            f"{h.label} ({h.mode}, for {now - h.since:.0f}s)"
            for name, h in self._held.items()
            if name != holder
        ]
        queued = [q for q in self._queue if q != holder]
        want = "the stack alone" if mode == EXCLUSIVE else "its turn with the stack"
        return (
            f"pyairtable: {label} waited {self.timeout:.0f}s for {want}; held by: "
            f"{'; '.join(holders) or 'nobody'}"
            + (f" ({len(queued)} more waiting to have it alone)" if queued else "")
            + ". A test using pyairtable_faults or a reset has the stack alone, after "
            "the tests already holding it end. Fix: find why that test takes so long, "
            "or raise --pyairtable-lease-timeout."
        )

    def downgrade(self, holder: str) -> None:
        """Exclusive -> shared, at once (others waiting for shared may go on)."""
        with self._cv:
            held = self._held.get(holder)
            if held is not None and held.mode == EXCLUSIVE:
                held.mode = SHARED
                self._cv.notify_all()

    def release(self, holder: str) -> None:
        with self._cv:
            self._held.pop(holder, None)
            self._cv.notify_all()

    def mode(self, holder: str) -> str | None:
        with self._cv:
            held = self._held.get(holder)
            return held.mode if held is not None else None

    def holders(self) -> dict[str, str]:
        """Holder -> mode, now (for tests and diagnostics)."""
        with self._cv:
            return {name: held.mode for name, held in self._held.items()}

    def waiting(self) -> dict[str, str]:
        """Holder -> the mode it waits for, now."""
        with self._cv:
            return dict(self._waiting)
