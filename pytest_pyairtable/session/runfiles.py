"""What a run leaves for the user once its stack has stopped: the timeline file
(``--pyairtable-timeline``, with where the tests ran) and the end of each service's log
for `pyairtable logs` (lastrun.py). The runtime holds one; nothing here starts anything."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine.orchestrator import Orchestrator
    from .hookevents import HookEvents
    from .lastrun import LastRunLogs


class RunFiles:
    def __init__(self, timeline: str | None) -> None:
        self.timeline = Path(timeline).resolve() if timeline else None
        self.tests_ran: tuple[float, float] | None = None  # on the orchestrator's clock
        self.last_logs: LastRunLogs | None = None
        self._timeline_written = False

    def watch(self, orch: Orchestrator, events: HookEvents, record: Path, run_id: str) -> None:
        """Keep the end of each service's log as it stops (a stack this run owns)."""
        from .lastrun import LastRunLogs

        self.last_logs = LastRunLogs(record, run_id, orch.redact)
        events.stopped = self.last_logs.save

    def note_test(self, orch: Orchestrator | None, start: float, stop: float) -> None:
        """A test ran from ``start`` to ``stop`` (wall clock): the timeline marks it."""
        if orch is None:
            return
        offset = time.time() - orch.now()
        began, ended = start - offset, stop - offset
        if self.tests_ran is not None:
            began, ended = min(began, self.tests_ran[0]), max(ended, self.tests_ran[1])
        self.tests_ran = (began, ended)

    def after_stop(self, orch: Orchestrator) -> list[str]:
        """The stack has stopped (or was kept): write what is due; notices to show."""
        if self.last_logs is not None:
            self.last_logs.finish()
        if self.timeline is None or not orch.runs or self._timeline_written:
            return []
        from ..engine.timeline import write_timeline

        self._timeline_written = True
        return [write_timeline(orch, self.timeline, self.tests_ran)]
