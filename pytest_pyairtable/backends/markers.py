"""Ownership of what outlives a moment of a run: its temp dirs, and kept stacks' records.

Every directory the tool makes carries a marker file naming the run that made it, the
process that owns it (PID and start time) and what it is. Clean-up of stale runs
deletes a directory only when it can prove the directory is ours and nobody uses it:

- it has our marker (a name that merely looks like ours proves nothing);
- its owner process is gone;
- it is not part of a kept stack whose record still names its run;
- it was not retained on purpose (the logs of a failed run);
- no live process still carries its run id.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..model.topology import own_dir_of
from ..support.errors import ConfigError
from .procfs import is_running, live_run_ids, proc_start_time

MARKER = ".pyairtable-owner.json"
TOOL = "pytest-pyairtable"


def _reachable_base(base: str) -> str:
    """A temp base that an unprivileged server user can traverse.

    As root we run PostgreSQL as another user, which cannot enter a 0700 directory such
    as pytest's /tmp/pytest-of-root; then fall back to the system temp dir.
    """
    if os.geteuid() != 0:
        return base
    path = Path(base).resolve()
    if all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents)):
        return base
    return "/tmp" if os.path.isdir("/tmp") else base


def temp_base() -> Path:
    """Where a run's directories go: $PYAIRTABLE_TMPDIR, else the system temp dir."""
    given = os.environ.get("PYAIRTABLE_TMPDIR")
    if not given:
        return Path(_reachable_base(tempfile.gettempdir()))
    if not os.path.isabs(given):
        problem = "is a relative path (services run in other directories)"
    elif not os.path.exists(given):
        problem = "does not exist"
    elif not os.path.isdir(given):
        problem = "is not a directory"
    else:
        return Path(_reachable_base(given))
    raise ConfigError(
        f"PYAIRTABLE_TMPDIR={given!r} {problem}. Fix: set it to the absolute path of an "
        f"existing directory, or unset it to use the system temp dir ({tempfile.gettempdir()})."
    )


def record_path(compose_file: Path) -> Path:
    """Where a kept stack of ``compose_file`` is recorded: beside it, in .pyairtable/."""
    return own_dir_of(compose_file) / f"{compose_file.name}.json"


def recorded_run(path: Path) -> str | None:
    """The run id a kept stack's record names, or None when there is no readable record."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    run_id = data.get("run_id") if isinstance(data, dict) else None
    return str(run_id) if run_id else None


def _write(path: Path, marker: dict[str, Any]) -> None:
    tmp = path / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker))
    tmp.chmod(0o644)
    os.replace(tmp, path / MARKER)


def claim(path: Path, run_id: str, kind: str) -> Path:
    """Mark a directory we just made as this process's, for this run."""
    _write(
        path,
        {
            "tool": TOOL,
            "run_id": run_id,
            "pid": os.getpid(),
            "ticks": proc_start_time(os.getpid()),
            "kind": kind,
            "tmpdir": str(temp_base()),  # which runs' dirs these are, where many share /dev/shm
            "kept": "",
            "retained": "",
        },
    )
    return path


def make_dir(base: Path, prefix: str, run_id: str, kind: str) -> Path:
    """A fresh directory under ``base``, reachable by a server run as another user.

    Named ``pyairtable-<kind>-<run id>-...``, not ``pyairtable-<pid>-...``: earlier
    versions of this tool deleted a ``pyairtable-<pid>-*`` directory whose pid had
    exited, and one may still run on the same machine (another checkout)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    return claim(path, run_id, kind)


def read(path: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("tool") == TOOL else None


def mark(path: Path, **fields: str) -> None:
    """Update a marker: ``kept=<record path>`` or ``retained=<why>``."""
    marker = read(path)
    if marker is not None:
        with contextlib.suppress(OSError):
            _write(path, {**marker, **fields})


def in_use(marker: dict[str, Any], live_runs: set[str], retained_too: bool = False) -> str | None:
    """Why a directory must stay, or None when it is stale (``retained_too``: also when
    it was only retained on purpose, as `pyairtable down --volumes` asks)."""
    if is_running(int(marker.get("pid") or 0), marker.get("ticks")):
        return "its run is still going"
    kept = marker.get("kept")
    if kept and recorded_run(Path(kept)) == marker.get("run_id"):
        return f"it belongs to the kept stack recorded in {kept}"
    if marker.get("retained") and not retained_too:
        return str(marker["retained"])
    if marker.get("run_id") in live_runs:
        return "processes of its run still run"
    return None


def sweep(bases: Iterable[Path], *, retained_too: bool = False) -> list[Path]:
    """Remove the stale directories of earlier runs in ``bases``; return what went."""
    candidates = []
    for base in bases:
        with contextlib.suppress(OSError):
            for path in base.iterdir():
                if path.name.startswith("pyairtable-") and not path.is_symlink() and path.is_dir():
                    marker = read(path)
                    if marker is not None:
                        candidates.append((path, marker))
    if not candidates:
        return []
    live = live_run_ids()
    removed = []
    for path, marker in candidates:
        if in_use(marker, live, retained_too) is None:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def remove_files(folder: Path, names: Iterable[str], made_folder: bool) -> None:
    """Remove the files this tool created in a folder of the user's (by name, never
    following a path out of it), and the folder if the tool made it and it is empty."""
    for name in names:
        if os.path.basename(name) == name and name not in (".", ".."):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
    if made_folder:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: anything the user put there stays
