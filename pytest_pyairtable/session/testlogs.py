"""A test's evidence: what each service it used logged while it ran.

Before a test (in its setup, once it holds the stack, before any fixture) the log file
of each service in its closure is marked with its size then: one ``os.stat``, all a
passing test pays. A service first handed out during the test (the boot by its first
test) is marked when it is ready. At the test's report, what was written since the mark
is read back, its last lines only, by the process that owns the stack
(``read_windows``): it settles
the services whose logs reach their files late first (a container's engine log is
followed into its file a few milliseconds behind; for a failure, until all a container
wrote before the test ended has reached the engine) and masks what it returns.

The window is the file's, so it is the test's own, up to that lag: without xdist, lines
a container wrote in the last few milliseconds before the test began can show at its
top. Under xdist the services are shared: the window holds what other workers' tests
caused at the same time too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..backends.base import Running
    from .runtime import Runtime

SECTION = "pyairtable: {} log"
MAX_LINE = 2000  # characters of one line shown; a service may log a whole document
_BLOCK = 65536

# (marks, lines, the moment the test ended if its lines up to then must be there)
ReadLogs = Callable[[Mapping[str, int], int, float | None], Mapping[str, str]]


def window_text(path: Path, offset: int, lines: int) -> str:
    """The last ``lines`` lines written to ``path`` since ``offset`` ('' for none), read
    from the end: a long test's window is not read whole. A file shorter than the mark
    was replaced (a kept stack started again): then all of it."""
    try:
        with open(path, "rb") as log:
            end = log.seek(0, os.SEEK_END)
            start = offset if offset <= end else 0
            data, pos = b"", end
            while pos > start and data.count(b"\n") <= lines:
                step = min(_BLOCK, pos - start)
                pos -= step
                log.seek(pos)
                data = log.read(step) + data
    except OSError:
        return ""
    found = data.split(b"\n")
    if found and not found[-1]:
        found.pop()  # the last line's newline
    shown = [_shorten(line.decode(errors="replace")) for line in found[-lines:]]
    if len(found) > lines:
        shown.insert(0, f"[earlier lines of this test omitted; the whole log: {path}]")
    return "\n".join(shown)


def read_windows(
    runtime: Runtime, marks: Mapping[str, int], lines: int, moment: float | None = None
) -> dict[str, str]:
    """The owner's side: what each service logged since its mark (its log's size when the
    holder's test began), the last ``lines`` lines, masked. The logs that reach their
    files late (a container's) are settled first, all at once, so the test's last lines
    are there: with ``moment`` (a failed test's end, wall clock), all written before it."""
    sources = {name: _log_source(runtime, name) for name in marks}
    late = [r for _, r in sources.values() if r is not None and r.logs_late]
    settling = [threading.Thread(target=r.sync_logs, args=(moment,), daemon=True) for r in late[1:]]
    for thread in settling:
        thread.start()
    if late:
        late[0].sync_logs(moment)
    for thread in settling:
        thread.join()
    return {
        name: runtime.redact(window_text(path, int(marks[name]), lines))
        for name, (path, _) in sources.items()
        if path is not None
    }


def _log_source(runtime: Runtime, name: str) -> tuple[Path | None, Running | None]:
    """A service's log file, and what settles it: this run's service, or a kept stack's
    (whose own processes write its files)."""
    orch, kept = runtime.orch, runtime.kept
    run = orch.runs.get(name) if orch is not None else None
    if run is not None and run.running is not None:
        return run.running.log_path, run.running
    if kept is not None and name in kept.services:
        return kept.services[name].handle.log_path, None
    return None, None


def _shorten(line: str) -> str:
    if len(line) <= MAX_LINE:
        return line
    return f"{line[:MAX_LINE]} [{len(line) - MAX_LINE} more characters]"


class TestLogs:
    """One pytest process's marks for the test it runs, and the log files it knows (from
    the handles its fixtures got: under xdist a worker reads the sizes itself)."""

    __test__ = False  # not a test class, whatever pytest collects

    def __init__(self, mode: str, lines: int) -> None:
        self.mode = mode
        self.lines = lines
        self.paths: dict[str, Path] = {}
        self.marks: dict[str, int] = {}  # service -> its log's size when the test began
        self._wanted: frozenset[str] = frozenset()

    def begin(self, services: Iterable[str]) -> None:
        """Before a test: mark the log of each service it uses that is known already."""
        self.marks = {}
        if self.mode == "never":
            self._wanted = frozenset()
            return
        self._wanted = frozenset(services)
        known = self._wanted & self.paths.keys()
        if known:  # (the backends were imported when the paths became known)
            from ..backends.base import log_size

            for name in known:
                self.marks[name] = log_size(self.paths[name])

    def seen(self, name: str, path: Path | None) -> None:
        """A service's handle arrived: a test using it that has no mark yet gets one now
        (its boot is not the test's evidence)."""
        if path is None:
            return
        self.paths[name] = path
        if name in self._wanted and name not in self.marks:
            from ..backends.base import log_size

            self.marks[name] = log_size(path)

    def wanted(self, when: str, outcome: str) -> bool:
        """Whether a report of the current test carries the logs."""
        if not self.marks:
            return False
        return outcome == "failed" or (self.mode == "always" and when == "call")

    def sections(
        self, read: ReadLogs, order: Iterable[str], moment: float | None = None
    ) -> list[tuple[str, str]]:
        """The report's sections: one per service that logged anything, in ``order``;
        ``moment``: the test's end, when all its services wrote before must be shown."""
        texts = read(self.marks, self.lines, moment)
        return [(SECTION.format(n), texts[n]) for n in order if texts.get(n)]
