"""Whether apt can install a package here, asked once per state of apt's lists.

``apt-cache policy`` loads the whole package cache: ~0.45 s of CPU, paid on a service's
launch (a ``postgres:16`` image run on an older local server names the step that
installs the newer one), every run. Its answer changes only with apt's lists (``apt-get
update``) or its sources and preferences, so it is kept, per package, in
``$XDG_CACHE_HOME/pytest-pyairtable/apt.json`` under a digest of those files' names,
sizes and mtimes (support/answercache.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess

from ..support.answercache import recall, remember, state_of

# What an install candidate depends on (a test points these elsewhere).
STATE_DIRS = (
    "/var/lib/apt/lists",
    "/etc/apt",
    "/etc/apt/sources.list.d",
    "/etc/apt/preferences.d",
)


def _state() -> str:
    files = []
    for folder in STATE_DIRS:
        with contextlib.suppress(OSError):
            files += [entry.path for entry in os.scandir(folder) if entry.is_file()]
    return state_of(files)


def has_candidate(package: str) -> bool:
    """True if ``apt-get install package`` would find it (apt-cache must be on PATH)."""
    state = _state()
    known, answer = recall("apt", package, state)
    if known:
        return bool(answer)
    try:
        found = subprocess.run(
            ["apt-cache", "policy", package], capture_output=True, text=True, timeout=10,
            check=False,
        ).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False  # not kept: the next run asks again
    answer = re.search(r"Candidate: (?!\(none\))", found) is not None
    remember("apt", package, state, answer)
    return answer
