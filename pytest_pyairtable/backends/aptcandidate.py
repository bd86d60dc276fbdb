"""Whether apt can install a package here, asked once per state of apt's lists.

``apt-cache policy`` loads the whole package cache: ~0.45 s of CPU, paid on a service's
launch (a ``postgres:16`` image run on an older local server names the step that
installs the newer one), every run. Its answer changes only with apt's lists (``apt-get
update``) or its sources and preferences, so it is kept, per package, in
``$XDG_CACHE_HOME/pytest-pyairtable/apt.json`` under a digest of those files' names,
sizes and mtimes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

# What an install candidate depends on (a test points these elsewhere).
STATE_DIRS = (
    "/var/lib/apt/lists",
    "/etc/apt",
    "/etc/apt/sources.list.d",
    "/etc/apt/preferences.d",
)


def _state() -> str:
    seen = []
    for folder in STATE_DIRS:
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                with contextlib.suppress(OSError):
                    if entry.is_file():
                        stat = entry.stat()
                        seen.append(f"{entry.path}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(seen)).encode()).hexdigest()[:20]


def _cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pytest-pyairtable" / "apt.json"


def _read(path: Path) -> dict[str, list[object]]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _write(path: Path, known: dict[str, list[object]]) -> None:
    """Replaced whole (a concurrent run reads the old or the new file, never half)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".apt-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(known, out)
            os.replace(temp, path)
        except OSError:
            os.unlink(temp)


def has_candidate(package: str) -> bool:
    """True if ``apt-get install package`` would find it (apt-cache must be on PATH)."""
    state, path = _state(), _cache_file()
    known = _read(path)
    entry = known.get(package)
    if isinstance(entry, list) and len(entry) == 2 and entry[0] == state:
        return bool(entry[1])
    try:
        found = subprocess.run(
            ["apt-cache", "policy", package], capture_output=True, text=True, timeout=10,
            check=False,
        ).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False  # not kept: the next run asks again
    answer = re.search(r"Candidate: (?!\(none\))", found) is not None
    _write(path, {**_read(path), package: [state, answer]})
    return answer
