"""A volley: a healthcheck's runs around its port's foreseen opening (readyforecast.py).

A run every gap, each in the background of the kept shell (execsession.py), until the
port is seen open or the volley's runs are done; one more at the opening unless a run
in flight will connect after it (as the gate would run it); then until one passes or
all have failed. Whenever the port opens, a run is on its way to connect just after it.

Runs ahead of the opening take one of the backend's volley slots each: a wide tier's
volleys together take no more cores than one chain link's; a run for which no slot is
free is not started. The run at the opening takes none: it is the gate's own run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..probes.waiting import WATCH_EVERY
from .readyforecast import CONNECTED_BY

if TYPE_CHECKING:
    from .execsession import ShellSession
    from .healthgate import PortGate
    from .readyforecast import Forecast

WAIT_AFTER_OPENING = 0.05  # between looks for a hung run, once the port is open


@dataclass
class Volley:
    code: int = 1  # 0: a run passed; else the last failure's exit code
    runs: int = 0  # runs started
    pass_began: float = 0.0  # when the run that passed began
    failed_early: bool = False  # a run failed before the opening: no waiting inside


def run_volley(
    session: ShellSession,
    gate: PortGate,
    command: str,
    forecast: Forecast,
    *,
    timeout: float,
    slots: threading.BoundedSemaphore | None,
) -> Volley:
    """The volley's outcome; TimeoutError (a run hung past ``timeout``), EOFError or
    OSError (the shell is gone) leave the session to be given up."""
    _, gap, planned = forecast.volley()
    held = _Slots(slots)
    in_flight: dict[int, float] = {}  # tag: when it began
    done = Volley()
    due, opening_seen, ahead_runs = time.monotonic(), False, 0
    try:
        while True:
            now = time.monotonic()
            opened = gate.open_now()  # looked at until the end: the forecasts learn it
            ahead, at_opening = not opened and due <= now and ahead_runs < planned, False
            if opened and not opening_seen:
                opening_seen = True
                connects_later = CONNECTED_BY * forecast.cost
                at_opening = all(now - t > connects_later for t in in_flight.values())
            if ahead:
                ahead_runs, due = ahead_runs + 1, max(due, now) + gap
                ahead = held.take()
            if ahead or at_opening:
                tag = held.launch(session, command, holds=ahead)
                in_flight[tag], done.runs = now, done.runs + 1
            elif not in_flight and (opened or ahead_runs >= planned):
                return done
            # a look at the port every WATCH_EVERY until it opens; an end wakes at once
            wait = WAIT_AFTER_OPENING if opened else WATCH_EVERY
            if not opened and ahead_runs < planned:
                wait = min(wait, max(0.0, due - now))
            for tag, code in session.ended(wait).items():
                began = in_flight.pop(tag, now)
                held.release(tag)
                done.code = code
                done.failed_early = done.failed_early or (code != 0 and not opened)
                if code == 0:
                    gate.open_now()  # (it passed within a look's pause: open by now)
                    done.pass_began = began
                    return done
            if any(now - began > timeout for began in in_flight.values()):
                raise TimeoutError
    finally:
        held.release_all()  # runs left going (once one passed, about to end; or hung)


class _Slots:
    """The backend's volley slots one volley's runs hold."""

    def __init__(self, slots: threading.BoundedSemaphore | None) -> None:
        self.slots = slots
        self.holding: set[int] = set()

    def take(self) -> bool:
        return self.slots is None or self.slots.acquire(blocking=False)

    def launch(self, session: ShellSession, command: str, *, holds: bool) -> int:
        """The run started; ``holds``: it holds the slot just taken (given back if the
        run could not start)."""
        try:
            tag = session.launch(command)
        except BaseException:
            if holds and self.slots is not None:
                self.slots.release()
            raise
        if holds and self.slots is not None:
            self.holding.add(tag)
        return tag

    def release(self, tag: int) -> None:
        if tag in self.holding and self.slots is not None:
            self.holding.discard(tag)
            self.slots.release()

    def release_all(self) -> None:
        for tag in list(self.holding):
            self.release(tag)
