"""One service's run, as the orchestrator tracks it: its state, its timeline, and what
the conditions of ``depends_on`` mean in those states."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Running
from ..backends.fetch import Fetch
from ..model.spec import ServiceSpec
from ..support.errors import PyAirtableError
from ..support.redact import dataclass_repr


class State(enum.Enum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"  # launched, not yet ready
    READY = "ready"
    COMPLETED = "completed"  # a one-shot service that exited 0
    FAILED = "failed"
    CANCELLED = "cancelled"  # the run stopped before it was started
    STOPPED = "stopped"


STARTED = {State.RUNNING, State.READY, State.COMPLETED}
SETTLED = {State.READY, State.COMPLETED, State.FAILED, State.CANCELLED, State.STOPPED}
UP = {State.READY, State.COMPLETED}


@dataclass
class ServiceRun:
    spec: ServiceSpec
    tier: int
    state: State = State.PENDING
    running: Running | None = None
    error: PyAirtableError | None = None
    scheduled_at: float | None = None
    # Its image, pulled or built (begun when the stack was prepared): when that began and
    # ended, apart from its own start, which begins once the image is there.
    fetch: Fetch | None = None
    fetch_began: float | None = None
    fetch_ended: float | None = None
    starting_at: float | None = None  # dependencies met; preparing (e.g. initdb) and launching
    launched_at: float | None = None
    ready_at: float | None = None
    stop_began: float | None = None
    stopped_at: float | None = None
    attempts: int = 0
    last_probe_error: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # Later starts (a fault's heal, `pyairtable restart`): (began, ready or None). The
    # fields above stay the boot's, so the summary's critical path is the boot's.
    restarts: list[tuple[float, float | None]] = field(default_factory=list)
    t0_wall: float = 0.0  # the wall-clock time at which the orchestrator's clock read 0

    def __repr__(self) -> str:
        return dataclass_repr(self, self.spec.secret_values(), self.spec.identifiers())

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ready_seconds(self) -> float | None:
        """The service's own time to ready: from when it could start to when it was ready."""
        if self.ready_at is None or self.starting_at is None:
            return None
        return self.ready_at - self.starting_at

    @property
    def outcome(self) -> str:
        """How its start-up ended; still 'ready' after it was stopped at the end."""
        if self.state is State.STOPPED:
            return "ready" if self.ready_at is not None else "stopped"
        if self.state is State.COMPLETED and self.details.get("restored"):
            return "restored"  # a job whose databases came from its snapshot
        value: str = self.state.value
        return value


def settled_for(condition: str) -> set[State]:
    if condition == "service_started":
        return STARTED | SETTLED
    if condition == "service_healthy":
        return SETTLED
    return {State.COMPLETED, State.FAILED, State.CANCELLED, State.STOPPED}


def satisfies(condition: str) -> set[State]:
    return {
        "service_started": STARTED,
        "service_healthy": {State.READY},
        "service_completed_successfully": {State.COMPLETED},
    }[condition]


def unmet(state: State) -> str:
    """Why a dependency in ``state`` does not meet its condition, for the error."""
    return {
        State.FAILED: "failed",
        State.CANCELLED: "was cancelled",
        State.READY: "is running but has not exited (it needs to, for "
        "service_completed_successfully)",
        State.COMPLETED: "exited with code 0 instead of becoming healthy; for a "
        "one-shot job use condition: service_completed_successfully",
    }.get(state, f"is {state.value}")
