"""The logs of the last finished run, for `pyairtable logs` once nothing runs any more.

As each service of a stack stops (the end of a test run, Ctrl-C on `up`, `pyairtable
down`), the end of its log (at most ``TAIL_BYTES``) is copied beside the compose file,
into ``.pyairtable/<compose file>.last-run/``, with what to redact. When the whole stack
has stopped, that directory replaces the previous run's: a reader sees one run's logs,
never a mix. The directory is ours (in the git-ignored ``.pyairtable/``), like the
kept stack's record beside it; the index is written with mode 0600 (it lists secrets).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model.topology import own_dir
from ..support.files import open_private, open_read, read_text, write_json

if TYPE_CHECKING:
    from ..engine.run import ServiceRun
    from ..support.redact import Redactor

TAIL_BYTES = 1 << 20
INDEX = "index.json"


def last_run_dir(record: Path) -> Path:
    """Beside the record of a kept stack of the same compose file."""
    return record.with_name(record.name.removesuffix(".json") + ".last-run")


class LastRunLogs:
    """Collects a stopping stack's log tails; ``finish`` makes them the last run's."""

    def __init__(self, record: Path, run_id: str, redact: Redactor) -> None:
        self.final = last_run_dir(record)
        self.staging = self.final.with_name(f"{self.final.name}.{run_id}.tmp")
        self.run_id = run_id
        self.secrets = redact.secrets
        self.identifiers = redact.identifiers
        self.services: list[str] = []
        self._lock = threading.Lock()
        self._staged = False

    def save(self, run: ServiceRun) -> None:
        """Copy the end of a stopped service's log (called from its stop thread)."""
        running = run.running
        if running is None or running.log_path is None or not running.log_path.exists():
            return
        with contextlib.suppress(Exception):  # an unfinished log follower: take what is there
            running.sync_logs()
        try:
            with self._lock:
                if not self._staged:  # a fresh dir: its name has the run id, so nothing
                    own_dir(self.final.parent)  # already there (nor a link) is ours
                    self.staging.mkdir(mode=0o700)
                    self._staged = True
            with open_read(running.log_path) as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - TAIL_BYTES))
                tail = log.read()
            # what a service printed may hold secrets: its owner's alone, as the log itself
            with open_private(self.staging / f"{run.name}.log", "wb") as copy:
                copy.write(tail)
            with self._lock:
                self.services.append(run.name)
        except OSError:
            return  # a read-only checkout: no last-run logs, nothing else lost

    def finish(self) -> None:
        """The stack has stopped: these are now the last run's logs."""
        if not self.services:
            return
        self.services, services = [], self.services
        index = {"run_id": self.run_id, "finished": time.time(), "secrets": self.secrets,
                 "identifiers": self.identifiers, "services": sorted(services)}  # fmt: skip
        try:
            write_json(self.staging / INDEX, index)
            old = self.final.with_name(f"{self.final.name}.{self.run_id}.old")
            with contextlib.suppress(FileNotFoundError):
                self.final.rename(old)
            self.staging.rename(self.final)
            shutil.rmtree(old, ignore_errors=True)
        except OSError:
            shutil.rmtree(self.staging, ignore_errors=True)


def read_last_run(record: Path) -> tuple[dict[str, Any], Path] | None:
    """The last finished run's index and its directory, or None when there is none."""
    directory = last_run_dir(record)
    try:
        index = json.loads(read_text(directory / INDEX))
    except (OSError, ValueError):
        return None
    return (index, directory) if isinstance(index, dict) else None
