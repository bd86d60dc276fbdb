"""What the orchestrator asks about job snapshots, and what a restored job runs as.

A job that declares its inputs may be restored from a snapshot of the databases it
wrote instead of being run (state/jobsnap.py decides, and keeps the snapshots). The
orchestrator asks at three moments: before a database server launches (``seed``: it
may start from a snapshot's data), at a job's turn (``restored``: a note when its
databases came from a snapshot, so it is not run) and after a job exited 0 at the boot
(``save``). ``NoSnapshots``, the default, has none: every job runs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ..backends.base import Backend, BaseRunning, Running
from ..model.spec import ServiceSpec


class NoSnapshots:
    """No job snapshots (the default, and --pyairtable-no-snapshots)."""

    def __init__(self) -> None:
        self.notices: list[str] = []  # for the run's summary

    def seed(self, spec: ServiceSpec, wanted: Collection[str]) -> None:
        """Before ``spec`` launches, with ``wanted`` the services of the run so far:
        put a snapshot's data in place where one will stand for its jobs. Raises a
        PyAirtableError when that data cannot be put in place (the service fails)."""

    def restored(self, name: str) -> str | None:
        """At job ``name``'s turn: why it need not run (its databases were started from
        its snapshot), as the progress line says it, or None: it runs."""
        return None

    def save(self, name: str, running: Mapping[str, Running]) -> str | None:
        """Job ``name`` exited 0 at the boot and its dependents wait: snapshot what it
        wrote (``running``: every launched service). A note for its line, or None."""
        return None

    def close(self) -> None:
        """The run ends: finish writing snapshots (before the backend removes its dirs)."""


class Restored(BaseRunning):
    """A job restored from a snapshot: nothing runs; it counts as exited 0."""

    log_path: Path | None = None

    def poll(self) -> int | None:
        return 0

    def wait(self, timeout: float | None = None) -> int | None:
        return 0

    def stop(self, grace: float) -> int | None:
        return 0

    def kill(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def kept_state(self) -> dict[str, Any]:
        return {"restored": True}


def adopted(backend: Backend, spec: ServiceSpec, state: Mapping[str, Any]) -> Running:
    """A kept service again, from its recorded state: a job restored from its snapshot
    ran nowhere (``Restored``), nothing of it to adopt."""
    return Restored() if state.get("restored") is True else backend.adopt(spec, state)
