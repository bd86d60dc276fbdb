"""Where job snapshots are kept: per project, in the user's cache.

``$PYAIRTABLE_SNAPSHOT_DIR``, else ``$XDG_CACHE_HOME/pytest-pyairtable/snapshots`` (by
default ``~/.cache/...``), holds a directory per project, named by a digest of its
compose file's absolute path and naming that file in ``project.json``; in it, one
directory per snapshot, named by its key, holding ``meta.json`` and each server's data.
Everything is owner-only (directories 0700, files 0600): the data is the databases'.

Not in the project's ``.pyairtable/``: a snapshot is tens of megabytes, and a project
directory is what ``build: .`` sends to an engine and ``COPY . .`` puts in an image (git
ignores ``.pyairtable/``, docker does not), and what editors index and backups copy.

Bounded per project, least recently used first: at most ``PYAIRTABLE_SNAPSHOTS_KEEP`` (8)
snapshots and ``PYAIRTABLE_SNAPSHOTS_MB`` (1024) megabytes; the newest always stays.
``pyairtable down --volumes`` removes the project's directory; nothing here ever touches
another project's. A snapshot is written beside its place and renamed into it, so a
reader sees all of it or none; one cut short by a killed run is removed a day later.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from ..support.files import read_text, write_json

DEFAULT_KEEP = 8
DEFAULT_MB = 1024
_KEY_LENGTH = 32
_STALE = 86400  # a snapshot being written, or removed, by a run killed a day ago


def root() -> Path:
    given = os.environ.get("PYAIRTABLE_SNAPSHOT_DIR")
    return Path(given) if given else _default_root()


def _default_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pytest-pyairtable" / "snapshots"


def _limit(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def is_key(name: str) -> bool:
    return len(name) == _KEY_LENGTH and all(c in "0123456789abcdef" for c in name)


def make_key(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:_KEY_LENGTH]


class Store:
    """One project's snapshots."""

    def __init__(self, compose_file: Path, base: Path | None = None) -> None:
        self.compose_file = str(Path(os.path.abspath(compose_file)))
        name = hashlib.sha256(self.compose_file.encode()).hexdigest()[:20]
        self.root = base or root()
        self.dir = self.root / name

    def find(self, key: str) -> Path | None:
        """The complete snapshot of ``key`` (marked as just used), or None."""
        entry = self.dir / key
        if entry.is_symlink() or not (entry / "meta.json").is_file():
            return None
        with contextlib.suppress(OSError):
            os.utime(entry)  # recently used: the bounds remove the others first
        return entry

    def meta(self, entry: Path) -> dict[str, Any]:
        try:
            data = json.loads(read_text(entry / "meta.json"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _ready(self) -> None:
        """The project's directory, ours and owner-only (made if missing)."""
        if self.root == _default_root():  # ours: ~/.cache/pytest-pyairtable
            self.root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.root.parent.chmod(0o700)
        for path in (self.root, self.dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = path.lstat()
            if path.is_symlink() or info.st_uid != os.geteuid():
                raise OSError(f"{path} is not a directory of this user's")
            if info.st_mode & 0o077:
                path.chmod(0o700)
        project = self.dir / "project.json"
        if not project.exists():
            write_json(project, {"compose_file": self.compose_file})

    def commit(self, key: str, staged: Path, meta: dict[str, Any]) -> bool:
        """``staged`` (each server's data) becomes the snapshot of ``key``: moved (or
        copied, from another file system) beside its place, then renamed into it. False
        when there already is one (another run wrote it first)."""
        self._ready()
        if self.find(key) is not None:
            return False
        building = Path(tempfile.mkdtemp(prefix=f".building-{key}-", dir=self.dir))
        try:
            target = building / "entry"
            try:
                os.rename(staged, target)
            except OSError:  # another file system (the staging is on tmpfs)
                shutil.copytree(staged, target, symlinks=True)
            _owner_only(target)
            write_json(target / "meta.json", {**meta, "key": key, "saved": time.time()})
            try:
                os.rename(target, self.dir / key)
            except OSError:
                return False  # another run's, of the same key, came first
        finally:
            shutil.rmtree(building, ignore_errors=True)
        self.prune(keep=key)
        return True

    def discard(self, key: str) -> None:
        """Remove one snapshot (the server could not start from it)."""
        self._remove(self.dir / key)

    def _remove(self, entry: Path) -> None:
        # renamed away first: a concurrent reader sees all of it or none of it
        trash = self.dir / f".trash-{entry.name}-{os.getpid()}"
        with contextlib.suppress(OSError):
            os.rename(entry, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def entries(self) -> list[Path]:
        """The complete snapshots, most recently used first."""
        found = []
        with contextlib.suppress(OSError):
            for path in self.dir.iterdir():
                if is_key(path.name) and not path.is_symlink() and path.is_dir():
                    with contextlib.suppress(OSError):
                        found.append((path.stat().st_mtime, path))
        return [path for _, path in sorted(found, reverse=True)]

    def prune(self, keep: str = "") -> list[str]:
        """Bound the project's snapshots by number, then size; return the keys removed."""
        now = time.time()
        with contextlib.suppress(OSError):
            for path in self.dir.iterdir():
                partial = path.name.startswith((".building-", ".trash-"))
                if partial and not path.is_symlink() and now - path.lstat().st_mtime > _STALE:
                    shutil.rmtree(path, ignore_errors=True)
        count = int(_limit("PYAIRTABLE_SNAPSHOTS_KEEP", DEFAULT_KEEP))
        max_bytes = _limit("PYAIRTABLE_SNAPSHOTS_MB", DEFAULT_MB) * 1024 * 1024
        removed, total, kept = [], 0, 0
        for n, entry in enumerate(self.entries()):
            size = _size(entry)
            if n == 0 or entry.name == keep or (kept < count and total + size <= max_bytes):
                total += size
                kept += 1
                continue
            self._remove(entry)
            removed.append(entry.name)
        return removed

    def clear(self) -> bool:
        """Remove the project's snapshots (`pyairtable down --volumes`); False when it
        has none. A directory that names another compose file is not this project's."""
        project = self.dir / "project.json"
        try:
            named = json.loads(read_text(project)).get("compose_file")
        except (OSError, ValueError, AttributeError):
            return False
        if named != self.compose_file or self.dir.is_symlink():
            return False
        trash = self.dir.with_name(f".trash-{self.dir.name}-{os.getpid()}")
        try:
            os.rename(self.dir, trash)
        except OSError:
            return False
        shutil.rmtree(trash, ignore_errors=True)
        return True


def _owner_only(path: Path) -> None:
    """Directories 0700, files without group or other bits: the data is the databases'."""
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o700)
        for name in files:
            file = os.path.join(folder, name)
            mode = os.lstat(file).st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                os.chmod(file, stat.S_IMODE(mode) & 0o700)


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total
