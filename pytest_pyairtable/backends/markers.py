"""Ownership of what outlives a moment of a run: its temp dirs, and kept stacks' records.

Every directory the tool makes carries a marker file naming its owner: the stack (the
project directory, by path and by device and inode, and its compose file), the run that
made it, the process that owns it (PID and start time) and what it is. Clean-up (the
stale sweep, `pyairtable down --volumes`, the end of a successful run) deletes a
directory only when it can prove the directory belongs to the current stack and that
nothing of its run still uses it:

- it has our marker, written by this user, naming this stack: another project's
  directories (a copy of this one included) are never touched, whatever their state,
  and a name that merely looks like ours proves nothing;
- its owner process is gone;
- it is not part of a kept stack whose record still names its run;
- it was not retained on purpose (the logs of a failed run), unless the clean-up is
  the one that removes those;
- no process of its run still runs: none carries its run id in its environment, none
  is in its cgroup or a process group the run recorded, and none works in (or holds a
  file open in) any of the run's directories. A server may rewrite its environment's
  memory (redis-server does), so the environment alone proves nothing;
- no container of its compose project still runs, for a kept compose stack (those
  processes are the engine's; with no engine answering, nothing is proven gone).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..model.topology import own_dir_of
from ..support.errors import ConfigError
from .procfs import is_running, proc_start_time, users_of

# Not the name earlier versions read: they removed any directory of theirs whose owner
# was gone, whichever project it was (one may still run on this machine, in another
# checkout), so they must not recognise these.
MARKER = ".pyairtable-owner.2.json"
GROUPS = ".pyairtable-groups"  # a run's process groups: "<pgid> <start ticks>" lines
TOOL = "pytest-pyairtable"
SHM = Path("/dev/shm")  # where the local backend puts servers' data (tmpfs)


@dataclass(frozen=True)
class Owner:
    """The stack a directory (or a kept record) belongs to: its project directory, by
    path and as the directory itself (a copy of the project, or another directory put
    at the same path, has another device or inode), and the compose file there."""

    root: str
    dev: int
    ino: int
    compose: str

    @classmethod
    def of(cls, compose_file: Path) -> Owner | None:
        """The owner of ``compose_file``'s stack; None when its directory is gone."""
        root = os.path.realpath(compose_file.parent)
        try:
            found = os.stat(root)
        except OSError:
            return None
        return cls(root, found.st_dev, found.st_ino, compose_file.name)

    @classmethod
    def from_json(cls, data: Any) -> Owner | None:
        try:
            return cls(str(data["root"]), int(data["dev"]), int(data["ino"]), str(data["compose"]))
        except (KeyError, TypeError, ValueError):
            return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return f"{self.root} (device {self.dev}, inode {self.ino}), {self.compose}"


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


def run_bases() -> list[Path]:
    """Where runs make their directories: the temp base, and /dev/shm for data."""
    return [temp_base(), SHM]


def record_path(compose_file: Path) -> Path:
    """Where a kept stack of ``compose_file`` is recorded: beside it, in .pyairtable/."""
    return own_dir_of(compose_file) / f"{compose_file.name}.json"


def compose_of_record(record: Path) -> Path:
    """The compose file whose stack ``record`` (a ``record_path``) is about."""
    return record.parent.parent / record.name.removesuffix(".json")


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


def claim(path: Path, run_id: str, kind: str, owner: Owner | None = None) -> Path:
    """Mark a directory we just made as this process's, for this run of ``owner``'s
    stack (None: of no stack, which no clean-up but the run's own ever removes)."""
    _write(
        path,
        {
            "tool": TOOL,
            "project": owner.to_json() if owner is not None else None,
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


def make_dir(base: Path, prefix: str, run_id: str, kind: str, owner: Owner | None = None) -> Path:
    """A fresh directory under ``base``, reachable by a server run as another user.

    Named ``pyairtable-<kind>-<run id>-...``, not ``pyairtable-<pid>-...``: earlier
    versions of this tool deleted a ``pyairtable-<pid>-*`` directory whose pid had
    exited, and one may still run on the same machine (another checkout)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    return claim(path, run_id, kind, owner)


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


def retain_logs(path: Path) -> str:
    """Keep a failed run's logs directory for a post-mortem; what the run's report says
    of it (where it is, and what removes it)."""
    mark(path, retained="the logs of a failed run, kept for a post-mortem")
    return (
        f"the logs of this run are kept in {path} (a service failed); the next "
        "successful run of this stack, or `pyairtable down --volumes` here, removes them"
    )


def note_group(path: Path, pgid: int, ticks: int) -> None:
    """Record a process group the run started (its leader's start time with it): while
    any member lives, the run's directories stay, whatever its environment shows."""
    with contextlib.suppress(OSError), open(path / GROUPS, "a") as groups:
        groups.write(f"{pgid} {ticks}\n")  # one short append: whole, among threads


def _groups(path: Path) -> list[tuple[int, int]]:
    try:
        lines = (path / GROUPS).read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        with contextlib.suppress(ValueError):
            pgid, ticks = map(int, line.split())
            found.append((pgid, ticks))
    return found


def remove_dir(path: Path, run_id: str) -> None:
    """Remove a directory of run ``run_id`` (named by a record, or by this run): only
    while its marker names that run, so a path a record names that now holds something
    else is left alone."""
    marker = read(path)
    if marker is not None and marker.get("run_id") == run_id and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)


def _ours(path: Path, marker: dict[str, Any], owner: Owner) -> bool:
    """Whether ``path`` provably belongs to ``owner``'s stack: its marker names it, and
    this user made the directory."""
    if Owner.from_json(marker.get("project")) != owner:
        return False
    try:
        return path.lstat().st_uid == os.geteuid()
    except OSError:
        return False


def _run_alive(run_id: str, found: list[tuple[Path, dict[str, Any]]]) -> str | None:
    """Why a run whose directories are ``found`` still runs, or None."""
    from .stopper import Target, find

    for _path, marker in found:
        if is_running(int(marker.get("pid") or 0), marker.get("ticks")):
            return "its run is still going"
    groups = {g for path, _ in found for g in _groups(path)}
    targets = [Target(run_id), *(Target(run_id, "", pgid, ticks) for pgid, ticks in groups)]
    targets += [Target(run_id, cgroup=str(m["cgroup"])) for _, m in found if m.get("cgroup")]
    if find(targets):
        return "processes of its run still run"
    users = users_of([path for path, _ in found])
    if users:
        pid, used = next(iter(users.items()))
        return f"process {pid} still uses {used}"
    projects = sorted({str(m["engine_project"]) for _, m in found if m.get("engine_project")})
    if projects and _containers_run(projects):
        return f"the containers of {', '.join(projects)} still run (or no engine says)"
    return None


def _containers_run(projects: list[str]) -> bool:
    """Whether a container of these compose projects (a kept stack's) still runs: its
    processes are the engine's, not ours to find. True when no engine answers: what
    cannot be proven gone stays."""
    from .dockerapi import LIVE_STATES, PROJECT_LABEL
    from .engines import connect

    try:
        api, _ = connect()
    except Exception:
        return True
    try:
        return any(
            api.containers(filters={"label": f"{PROJECT_LABEL}={p}", "status": list(LIVE_STATES)})
            for p in projects
        )
    except Exception:
        return True
    finally:
        api.close()


def _why_kept(marker: dict[str, Any], retained_too: bool) -> str | None:
    kept = marker.get("kept")
    if kept and recorded_run(Path(kept)) == marker.get("run_id"):
        return f"it belongs to the kept stack recorded in {kept}"
    if marker.get("retained") and not retained_too:
        return str(marker["retained"])
    return None


def _runs(bases: Iterable[Path], owner: Owner) -> dict[str, list[tuple[Path, dict[str, Any]]]]:
    """Run id -> the directories (with their markers) of that run of ``owner``'s stack."""
    runs: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for base in bases:
        with contextlib.suppress(OSError):
            for path in base.iterdir():
                if path.name.startswith("pyairtable-") and not path.is_symlink() and path.is_dir():
                    marker = read(path)
                    if marker is not None and _ours(path, marker, owner):
                        runs.setdefault(str(marker.get("run_id")), []).append((path, marker))
    return runs


def kept_runs(bases: Iterable[Path], owner: Owner) -> dict[str, list[Path]]:
    """The runs of ``owner``'s stack that were kept, with their directories, whether a
    record still names them or not (`git clean -fdX` removes .pyairtable/)."""
    return {
        run: sorted(path for path, _ in found)
        for run, found in _runs(bases, owner).items()
        if any(marker.get("kept") for _, marker in found)
    }


def sweep(bases: Iterable[Path], owner: Owner | None, *, retained_too: bool = False) -> list[Path]:
    """Remove the stale directories that earlier runs of ``owner``'s stack left in
    ``bases``; return what went. ``retained_too``: also the logs kept on purpose (a
    failed run's), as the next successful run and `pyairtable down --volumes` do."""
    if owner is None:
        return []
    runs = _runs(bases, owner)
    removed = []
    for run_id, found in runs.items():
        if any(_why_kept(marker, retained_too) for _, marker in found):
            continue  # a run's directories go together, or not at all
        if _run_alive(run_id, found) is None:
            for path, _ in found:
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
