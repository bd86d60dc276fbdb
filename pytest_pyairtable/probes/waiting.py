"""The retry policy for readiness: first try at once, then fast exponential backoff.

Peers poll every 0.1-30 s; a service ready in 0.5 s should be seen at 0.5 s. The wait
starts at ``FIRST_WAIT`` (1 ms) and doubles up to a cap that is never above the
healthcheck's ``interval``. ``sleep`` is injectable so tests of the policy never sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from .checks import Probe, ProbeFailed

FIRST_WAIT = 0.001
MAX_WAIT = 0.05


class Gone(Exception):
    """The process being probed is no longer running; waiting longer cannot help."""

    def __init__(self, reason: str, *, exited: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exited = exited  # False: still running, but judged failed (engine: unhealthy)


@dataclass
class WaitOutcome:
    details: dict[str, Any]
    attempts: int
    last_error: str


def wait_ready(
    probe: Probe,
    *,
    budget: float,
    cap: float = MAX_WAIT,
    alive: Callable[[], str | None] = lambda: None,
    sleep: Callable[[float], None] = time.sleep,
    on_attempt: Callable[[int, str | None], None] | None = None,
) -> WaitOutcome:
    """Repeat ``probe.check`` until it passes; raise TimeoutError or Gone.

    ``alive`` returns None while the process runs, else why it is not running, so a
    crashed service fails at once instead of at the timeout.
    """
    errors: list[str] = []

    def attempt() -> dict[str, Any]:
        reason = alive()
        if reason is not None:
            raise Gone(reason)
        try:
            details = probe.check()
        except ProbeFailed as exc:
            errors.append(str(exc))
            if on_attempt:
                on_attempt(len(errors), str(exc))
            raise
        if on_attempt:
            on_attempt(len(errors) + 1, None)
        return details

    def give_up(state: RetryCallState) -> dict[str, Any]:
        raise TimeoutError(errors[-1] if errors else "no attempt finished")

    retrying = Retrying(
        stop=stop_after_delay(max(budget, 0.0)),
        wait=wait_exponential(multiplier=FIRST_WAIT, min=FIRST_WAIT, max=max(cap, FIRST_WAIT)),
        retry=retry_if_exception_type(ProbeFailed),
        sleep=sleep,
        retry_error_callback=give_up,
    )
    details = retrying(attempt)
    return WaitOutcome(details, len(errors) + 1, errors[-1] if errors else "")
