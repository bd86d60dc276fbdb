"""Answers that cost a process start, kept per state of the files they depend on.

Some questions asked on a run's critical path have answers that change only with files
on disk: which compose to run (a `version` call of each candidate, 35-45 ms before the
first container can be made), whether apt can install a package (~0.45 s of CPU). Each
is kept in ``$XDG_CACHE_HOME/pytest-pyairtable/<name>.json`` (by default under
``~/.cache``; owner-only) under a digest of those files: a file that changed, appeared
or went asks again. Where the cache cannot be read or written, every run asks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .files import read_text, write_json


def cache_file(name: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pytest-pyairtable" / f"{name}.json"


def state_of(paths: Iterable[str]) -> str:
    """A digest of each path's size, mtime and inode (or its absence)."""
    seen = []
    for path in paths:
        try:
            found = os.stat(path)
        except OSError:
            seen.append(f"{path}\0-")
            continue
        seen.append(f"{path}\0{found.st_size}\0{found.st_mtime_ns}\0{found.st_ino}")
    return hashlib.sha256("\n".join(sorted(seen)).encode()).hexdigest()[:20]


def _read(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(read_text(path))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def recall(name: str, key: str, state: str) -> tuple[bool, Any]:
    """(True, the answer) kept for ``key`` in this ``state``, else (False, None)."""
    entry = _read(cache_file(name)).get(key)
    if isinstance(entry, list) and len(entry) == 2 and entry[0] == state:
        return True, entry[1]
    return False, None


def remember(name: str, key: str, state: str, answer: Any) -> None:
    """Keep ``answer`` (JSON) for ``key`` in ``state``; the file is replaced whole (a
    concurrent run reads the old or the new one, never half)."""
    path = cache_file(name)
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_json(path, {**_read(path), key: [state, answer]})
