"""Reading a configuration file (compose file, env file) with bounds.

A path given by a user may name anything: a directory, a named pipe (reading one
blocks until someone writes), ``/dev/zero`` (endless), a log file of gigabytes. Only
regular files and character devices such as ``/dev/null`` are read, and at most
``MAX_BYTES`` of them: a compose file is a few kilobytes, a large one a few hundred.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_BYTES = 4 * 1024 * 1024


class FileRefused(ValueError):
    """The path cannot be read as a configuration file; the message says why."""


def read_bounded(path: Path) -> bytes:
    """The file's bytes. Raises OSError (missing, unreadable) or FileRefused."""
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise FileRefused("it is a directory, not a file")
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
        raise FileRefused("it is a pipe, socket or device, not a file")
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise FileRefused(f"it is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    return data
