"""A kept stack's record binds to the directory it was written in: its path, device and
inode. Read anywhere else (a copy of the project made with ``cp -a``, a project moved,
or another directory put at its path), it is a ``ForeignRecord``: it proves nothing
about a stack there, so nothing attaches to, stops or removes what it names. A copy's
record is replaced by the copy's own kept stack, since the original keeps its record;
any other foreign record stays, as the only way left to its stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backends.markers import Owner, compose_of_record, record_path, recorded_run
from ..support.errors import KeepError


class ForeignRecord(KeepError):
    """A record written in another directory than the one it is in (a copy of the
    project, or a project moved or replaced): it proves nothing about a stack here."""

    def __init__(self, path: Path, bound: Owner | None, here: Owner | None, run_id: str) -> None:
        self.path = path
        # a copy: the original is where it was, with its own record of the same run
        self.copy = (
            bound is not None
            and (here is None or bound.root != here.root)
            and Owner.of(Path(bound.root) / bound.compose) == bound
            and recorded_run(record_path(Path(bound.root) / bound.compose)) == run_id
        )
        if bound is not None and self.copy:
            text = (
                f"the record {path} belongs to the stack started in {bound.root}: this "
                "directory is a copy of that project, and a copy never acts on the "
                f"original's stack. Fix: run the command in {bound.root}; to start afresh "
                f"here, delete {path}."
            )
        else:
            where = bound.describe() if bound is not None else "no directory"
            this = here.describe() if here is not None else str(path.parent.parent)
            text = (
                f"the record {path} was written for {where}, and this directory is {this} "
                "(the project was moved, or replaced by a copy): nothing is done with the "
                "stack it names. Fix: run the command where that stack was started; if "
                "nothing can reach it any more, stop its processes (they carry "
                f"PYAIRTABLE_RUN_ID={run_id} in their environment) and delete {path}."
            )
        super().__init__(text)


def bound_to(record: Path) -> dict[str, Any]:
    """What a record saved at ``record`` says of its directory."""
    owner = Owner.of(compose_of_record(record))
    return owner.to_json() if owner is not None else {}


def check_bound(record: Path, data: dict[str, Any]) -> None:
    """Raise ForeignRecord unless the record ``data``, read at ``record``, was written there."""
    bound, here = Owner.from_json(data.get("project")), Owner.of(compose_of_record(record))
    if bound is None or bound != here:
        raise ForeignRecord(record, bound, here, str(data.get("run_id", "?")))
