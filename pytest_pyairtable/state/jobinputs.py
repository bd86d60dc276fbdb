"""The digest of a job's declared inputs (``x-pyairtable: {job: {inputs: [...]}}``): what
its result depends on besides its definition, by content, never by modification time
(a checkout, a ``touch`` or a CI cache restore changes times, not what a migration does).

Each input is a file, a directory (every file under it) or a glob (``**`` crosses
directories). Left out, because running the job writes them or they are no input of
anyone's: Python's byte-code caches, version-control and tool caches. A file's path
(relative to the project directory), whether it is executable, and its bytes enter the
digest; a symbolic link counts as the file it points to. Bounded: more than ``MAX_FILES``
files or ``MAX_BYTES`` bytes and the job is not snapshotted (it runs every time), since
hashing that much on every boot would cost what the snapshot saves.

A kept stack records each job's digest as the boot saw it (``recorded``): a later run
attaches only while the inputs still digest the same (``inputs_changed``), since the kept
databases are what the job made of the inputs it ran with.
"""

from __future__ import annotations

import glob
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model.spec import StackSpec

MAX_FILES = 20_000
MAX_BYTES = 256 * 1024 * 1024
# What running a job writes beside its inputs, or no job reads as an input.
SKIPPED_DIRS = frozenset(
    {"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache", ".ruff_cache",
     ".pyairtable", ".tox", ".nox", "node_modules"}
)  # fmt: skip
SKIPPED_SUFFIXES = (".pyc", ".pyo")
_GLOB = frozenset("*?[")


class InputsProblem(Exception):
    """The inputs cannot be digested: one is missing (the message says which and the fix),
    or they are too many or too big (``too_big``)."""

    def __init__(self, message: str, *, too_big: bool = False) -> None:
        super().__init__(message)
        self.too_big = too_big


@dataclass(frozen=True)
class Digest:
    value: str  # sha256, hex
    files: int
    size: int


def digest(patterns: tuple[str, ...], base: Path) -> Digest:
    """The digest of the files ``patterns`` (absolute) name; paths in it are relative to
    ``base``, so a moved project digests the same."""
    files: dict[str, Path] = {}
    for pattern in patterns:
        found = _expand(pattern, base)
        if not found:
            shown = _shown(pattern, base)
            what = "matches no file" if _is_glob(pattern) else "does not exist"
            raise InputsProblem(
                f"x-pyairtable.job.inputs names {shown!r}, which {what} (relative to "
                f"{base}). Fix: correct the path, or remove it from the inputs."
            )
        for path in found:
            files.setdefault(_shown(str(path), base), path)
    if len(files) > MAX_FILES:
        raise InputsProblem(f"its inputs are {len(files)} files (over {MAX_FILES})", too_big=True)
    h = hashlib.sha256()
    total = 0
    for name in sorted(files):
        path = files[name]
        try:
            info = os.stat(path)
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES - total + 1)
        except OSError as exc:
            raise InputsProblem(
                f"x-pyairtable.job.inputs: cannot read {name!r}: {exc.strerror}. Fix: make it "
                "readable, or remove it from the inputs."
            ) from None
        total += len(data)
        if total > MAX_BYTES:
            raise InputsProblem(f"its inputs hold over {MAX_BYTES >> 20} MiB", too_big=True)
        executable = bool(info.st_mode & stat.S_IXUSR)
        h.update(f"{name}\0{int(executable)}\0{len(data)}\0".encode())
        h.update(data)
    return Digest(h.hexdigest(), len(files), total)


def digests(stack: StackSpec) -> dict[str, Digest | InputsProblem]:
    """Each job that declares inputs: their digest, or why there is none; taken once at
    a boot (the snapshots' plan and a kept stack's record share it)."""
    base = Path(stack.compose_file).parent
    found: dict[str, Digest | InputsProblem] = {}
    for name, spec in stack.services.items():
        if spec.job and spec.job_inputs:
            try:
                found[name] = digest(spec.job_inputs, base)
            except InputsProblem as problem:
                found[name] = problem
    return found


def recorded(found: Mapping[str, Digest | InputsProblem]) -> dict[str, str]:
    """What a kept stack's record holds of ``digests``: job -> digest, where there is one
    (inputs over the bound are not checked when a run attaches)."""
    return {name: d.value for name, d in found.items() if isinstance(d, Digest)}


def inputs_changed(record: Mapping[str, str], stack: StackSpec) -> str | None:
    """Which jobs of ``record`` (a kept stack's) have inputs that no longer digest the
    same (changed, gone, or unreadable), as a reason not to attach; None if none."""
    now = digests(stack)
    changed = []
    for name, value in sorted(record.items()):
        found = now.get(name)
        if not isinstance(found, Digest) or found.value != value:
            changed.append(f"'{name}'")
    if not changed:
        return None
    jobs = f"job {changed[0]}" if len(changed) == 1 else f"jobs {', '.join(changed)}"
    return f"the inputs of its {jobs} changed since it ran"


def _is_glob(pattern: str) -> bool:
    return any(c in _GLOB for c in pattern)


def _shown(path: str, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive
        return path


def _expand(pattern: str, base: Path) -> list[Path]:
    """The regular files ``pattern`` names (directories walked), skipping caches (a
    cache dir above the project, as in ``.tox/``, is no reason to skip)."""
    if _is_glob(pattern):
        roots = [Path(p) for p in sorted(glob.glob(pattern, recursive=True))]
    else:
        roots = [Path(pattern)] if os.path.exists(pattern) else []
    found: list[Path] = []
    for root in roots:
        if any(part in SKIPPED_DIRS for part in Path(_shown(str(root), base)).parts):
            continue
        if root.is_dir():
            for folder, dirs, names in os.walk(root):
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
                found += [Path(folder, n) for n in sorted(names) if _wanted(Path(folder, n))]
        elif _wanted(root):
            found.append(root)
    return found


def _wanted(path: Path) -> bool:
    return path.is_file() and not path.name.endswith(SKIPPED_SUFFIXES)
