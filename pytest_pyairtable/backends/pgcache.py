"""A cache of freshly initialised PostgreSQL clusters, one per (server, user, password,
database). initdb writes ~40 MB and takes a second or more; copying a cached cluster
into a tmpfs data dir takes about 0.1 s, and PostgreSQL is on every stack's critical
path. The cache lives in ``$XDG_CACHE_HOME/pytest-pyairtable`` (mode 0700: clusters
hold password verifiers); ``PYAIRTABLE_PG_CACHE=0`` turns it off."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path


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
    """Copy the cached cluster to ``data``; False when there is none."""
    root = cache_root()
    template = root / key if root else None
    if template is None or not (template / "PG_VERSION").exists():
        return False
    shutil.copytree(template, data, symlinks=True)
    if owner is not None:
        for folder, dirs, files in os.walk(data):
            for name in (".", *dirs, *files):
                os.chown(os.path.join(folder, name), *owner)
    data.chmod(0o700)
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
