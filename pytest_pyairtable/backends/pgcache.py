"""A cache of freshly initialised PostgreSQL clusters, one per (server, user, password,
database). initdb writes ~40 MB and takes a second or more; copying a cached cluster
into a tmpfs data dir takes about 0.1 s, and PostgreSQL is on every stack's critical
path.

The cache lives in ``$XDG_CACHE_HOME/pytest-pyairtable/pg`` (by default
``~/.cache/pytest-pyairtable/pg``; mode 0700: clusters hold password verifiers) and is
bounded: after each save, clusters unused for ``PYAIRTABLE_PG_CACHE_DAYS`` (30) days go,
then the least recently used until the whole is under ``PYAIRTABLE_PG_CACHE_MB`` (256);
the newest always stays. ``PYAIRTABLE_PG_CACHE=0`` turns it off. Only entries it can
prove are clusters it saved (a key-named directory holding ``PG_VERSION``) are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

DEFAULT_MB = 256
DEFAULT_DAYS = 30
_KEY = re.compile(r"^[0-9a-f]{20}$")
_BUILDING = re.compile(r"^\.(trash-)?[0-9a-f]{20}-")  # a save or a removal cut short


def cache_root() -> Path | None:
    if os.environ.get("PYAIRTABLE_PG_CACHE", "1") in ("0", "false", "no"):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = base / "pytest-pyairtable" / "pg"
    try:
        root.mkdir(parents=True, exist_ok=True)
        (base / "pytest-pyairtable").chmod(0o700)
    except OSError:
        return None
    return root


def template_key(initdb: str, user: str, password: str, database: str) -> str:
    stat = os.stat(initdb)
    text = "\0".join([initdb, str(stat.st_mtime_ns), user, password, database])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def restore(key: str, data: Path, owner: tuple[int, int] | None) -> bool:
    """Copy the cached cluster to ``data``; False when there is none (or it went away
    while copying: another run pruned it), and initdb must run."""
    root = cache_root()
    template = root / key if root else None
    if template is None or not (template / "PG_VERSION").exists():
        return False
    if not copy_cluster(template, data, owner):
        return False
    with contextlib.suppress(OSError):
        os.utime(template)  # recently used: the size bound removes the others first
    return True


def copy_cluster(source: Path, data: Path, owner: tuple[int, int] | None) -> bool:
    """``source`` (a cluster's data dir) copied to ``data``, owned by ``owner`` (the user
    the server runs as) and 0700 as PostgreSQL wants it; False, and nothing left at
    ``data``, when it could not be copied whole. A job's snapshot is put in place so too."""
    try:
        shutil.copytree(source, data, symlinks=True)
        if owner is not None:
            for folder, dirs, files in os.walk(data):
                for name in (".", *dirs, *files):
                    os.chown(os.path.join(folder, name), *owner)
        data.chmod(0o700)
    except OSError:
        shutil.rmtree(data, ignore_errors=True)
        return False
    return True


def save(key: str, data: Path) -> None:
    """Keep a copy of a fresh cluster; concurrent runs race safely (atomic rename)."""
    root = cache_root()
    if root is None or (root / key).exists():
        return
    building = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        shutil.copytree(data, building / "cluster", symlinks=True)
        os.rename(building / "cluster", root / key)
    except OSError:
        pass  # another run saved it first, or the disk is full: either way, no cache
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(building)
    prune(root, keep=key)


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _limit(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def prune(root: Path, keep: str = "") -> list[str]:
    """Bound the cache by age, then by size, least recently used first; return what went."""
    max_bytes = _limit("PYAIRTABLE_PG_CACHE_MB", DEFAULT_MB) * 1024 * 1024
    max_age = _limit("PYAIRTABLE_PG_CACHE_DAYS", DEFAULT_DAYS) * 86400
    now = time.time()
    entries = []
    for path in root.iterdir():
        with contextlib.suppress(OSError):
            if _BUILDING.match(path.name) and now - path.stat().st_mtime > 86400:
                shutil.rmtree(path)  # cut short by a killed run, a day ago
            elif _KEY.match(path.name) and (path / "PG_VERSION").is_file():
                entries.append((path.stat().st_mtime, path))
    entries.sort(reverse=True)  # newest first
    removed, total = [], 0
    for i, (mtime, path) in enumerate(entries):
        size = _size(path)
        protected = i == 0 or path.name == keep
        if protected or (now - mtime <= max_age and total + size <= max_bytes):
            total += size
            continue
        # renamed away first: a concurrent restore sees all of it or none of it
        trash = root / f".trash-{path.name}-{os.getpid()}"
        with contextlib.suppress(OSError):
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True)
            removed.append(path.name)
    return removed
