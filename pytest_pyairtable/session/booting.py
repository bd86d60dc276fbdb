"""A stack being booted by `pyairtable up` (or `pytest --pyairtable-up`): marked before
anything starts, in ``.pyairtable/<compose file>.booting`` beside the record, so that a
`pyairtable down` meanwhile finds the boot and cancels it, instead of saying "nothing to
stop" while the stack comes up behind it and stays.

The mark names the booting process (PID and start time) and, as a record does, the
directory it was written in: a copy of the project made during a boot names a boot that
is not its own. It goes the moment the boot is over: once the stack is recorded (kept,
or held by the foreground `up`), and as the boot begins to stop (a failure, a Ctrl-C, a
`down`), which tells a `down` that asked for the stop that it was heard.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ..backends.markers import Owner, compose_of_record
from ..model.topology import own_dir
from .kept import Foreground


def boot_path(record: Path) -> Path:
    return record.with_name(record.name.removesuffix(".json") + ".booting")


class Boot:
    """This process's boot of the stack recorded at ``record``."""

    def __init__(self, record: Path, run_id: str) -> None:
        self.path = boot_path(record)
        self.record = record
        self.run_id = run_id

    def begin(self) -> None:
        """Mark the boot (before anything starts); a read-only project: no mark."""
        owner = Owner.of(compose_of_record(self.record))
        me = Foreground.me()
        data = {"run_id": self.run_id, "pid": me.pid, "ticks": me.ticks}
        data["project"] = owner.to_json() if owner is not None else None
        with contextlib.suppress(OSError):
            own_dir(self.path.parent)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.path)

    def end(self) -> None:
        """The boot is over: the mark goes (only ours: another boot may have begun)."""
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.path.read_text()).get("run_id") == self.run_id:
                self.path.unlink()


def booting(record: Path) -> Foreground | None:
    """The process still booting the stack of ``record``'s directory, or None."""
    try:
        data = json.loads(boot_path(record).read_text())
        boot = Foreground(int(data["pid"]), data.get("ticks"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    here = Owner.of(compose_of_record(record))
    if here is None or Owner.from_json(data.get("project")) != here or not boot.alive:
        return None
    return boot
