"""Files that hold what a run must keep to itself: logs (whatever a service prints,
secrets too), kept-stack records, snapshots, indexes. One way to open and write them.

- Never through a symlink: the last component is opened with ``O_NOFOLLOW``, so a
  ``logs/a.log -> ~/.bashrc`` planted in a logs dir is refused instead of appended to.
- Only a regular file of our own, with one name: a FIFO or device would block or do
  what its driver does; another user's file, or a second hard link to a file, is not
  the log it looks like.
- Owner-only: a new file is made 0600; an existing one that others may read (a 0644
  log from an earlier tool) is narrowed to 0600 before a byte is written to it.
- Whole or not at all: ``write_atomic`` writes a new file beside the target and renames
  it over, so a reader sees the old content or the new, never half (the rename replaces
  a symlink at the target, it never follows it).

Refusals raise ``UnsafeFileError`` (a PrerequisiteError and an ``OSError``, so callers
that already treat an unwritable file as "not written" go on doing so), whose message
says why and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from pathlib import Path
from typing import IO, Any

from .errors import PrerequisiteError

PRIVATE = 0o600
_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


class UnsafeFileError(PrerequisiteError, OSError):
    """A file we were to write is not one we can safely write; the message says why.
    An OSError too: where an unwritable file means "not written", so does this."""


def _refuse(path: Path | str, why: str, fix: str) -> UnsafeFileError:
    return UnsafeFileError(f"{path} {why}. Fix: {fix}.")


def _check(fd: int, path: Path | str) -> None:
    """The open file is a regular file of ours with one name, and owner-only."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise _refuse(path, "is not a regular file", "remove it, or choose another path")
    if info.st_uid != os.geteuid():
        raise _refuse(
            path,
            f"belongs to another user (uid {info.st_uid})",
            "remove it, or choose a directory of your own",
        )
    if info.st_nlink > 1:
        raise _refuse(
            path,
            f"has {info.st_nlink} names (a hard link: writing it writes another file too)",
            "remove this name, or choose another path",
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.fchmod(fd, PRIVATE)  # narrowed before anything is written to it


def open_private(path: Path | str, mode: str = "ab") -> IO[Any]:
    """Open ``path`` to write, owner-only, never through a symlink. ``mode``: "a"/"ab"
    append (created if missing), "w"/"wb" truncate (created if missing), "x"/"xb"
    create only (FileExistsError if it exists)."""
    kind = mode.replace("b", "")
    flags = _FLAGS | os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK  # a FIFO must not block
    flags |= {"a": os.O_APPEND, "w": 0, "x": os.O_EXCL}[kind]  # KeyError: a bad mode
    try:
        fd = os.open(path, flags, PRIVATE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            raise _refuse(
                path, "is a symbolic link, and no file is written through one", "remove the link"
            ) from None
        if exc.errno == errno.ENXIO:  # a FIFO without a reader, a socket
            raise _refuse(path, "is not a regular file", "remove it") from None
        raise
    try:
        _check(fd, path)
        os.set_blocking(fd, True)
        if kind == "w":
            os.ftruncate(fd, 0)  # after the checks: never truncate a file that is not ours
        return os.fdopen(fd, mode.replace("x", "w"))  # on an fd, "w" truncates nothing
    except BaseException:
        os.close(fd)
        raise


def create_private(path: Path | str) -> bool:
    """Create ``path`` empty and owner-only; False when a file of ours was there already
    (made owner-only if it was not). Refuses a symlink, another user's file, a non-file."""
    try:
        open_private(path, "xb").close()
    except FileExistsError:
        open_private(path, "ab").close()  # the checks, and the narrowing
        return False
    return True


def write_atomic(path: Path | str, data: bytes | str) -> None:
    """Replace ``path`` with ``data``, owner-only, whole or not at all."""
    import tempfile  # on the way to a write only: not every run writes a file

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:  # mkstemp: O_EXCL, mode 0600
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: Path | str, data: Any, *, indent: int | None = None) -> None:
    """``data`` as JSON at ``path``, owner-only, whole or not at all."""
    write_atomic(path, json.dumps(data, indent=indent))


def open_read(path: Path | str) -> IO[bytes]:
    """A file of ours to read, never through a symlink (a log or record replaced by a
    link to another file is not ours to show or trust), never a FIFO that would block."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refuse(path, "is not a regular file", "remove it")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: Path | str) -> str:
    """A file of ours as text (see ``open_read``)."""
    with open_read(path) as f:
        return f.read().decode()
