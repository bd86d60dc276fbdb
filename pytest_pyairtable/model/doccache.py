"""Parsed compose files, kept by the digest of their text: a warm load imports no YAML.

Importing YAML and our go-yaml reader costs ~14 ms, on the way to the first service's
start, on every run that boots a stack; parsing a file twice gives the same documents.
So the documents each load parsed are kept in ``.pyairtable/documents`` beside the first
compose file, keyed by the SHA-256 of the text (never by modification time: a file
rewritten within the clock's resolution keeps its time) and by the reader's version.

- Only what parsed without error is kept; a failing file is parsed, and reported, anew.
- The file holds the documents of the last load that parsed anything, nothing older:
  it cannot grow. It is replaced whole (written aside, then renamed), so a concurrent
  run reads the old entries or the new ones; anything unreadable is a miss.
- The texts are the compose files' own, already on disk beside it; the file is still
  created owner-only, as the files themselves may be.

The file is JSON, which reads back as plain values whatever it holds (a format that
rebuilds objects would have to trust the file). So only documents made of plain values
are kept: a file with a ``!reset``/``!override`` tag or a timestamp (rare) is parsed on
every load, and so is one whose aliases expand it far beyond its own size (JSON has no
aliases). The directory is made only to save into: a failed or read-only load leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from ..support.files import write_atomic
from .topology import own_dir, own_dir_of

# The reader's semantics: bump with any change to what yamlread.py builds from a text.
# An entry also names the reader's files and PyYAML's as installed (_reader_stamp): an
# edited checkout or an upgrade is a miss even where nobody bumped this.
READER_VERSION = 1
_NAME = "documents"
_SMALL, _GROWTH = 64 * 1024, 8  # bytes, and times the text's size
_CONSTANTS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class DocumentCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._old: dict[str, Any] | None = None  # read on the first lookup
        self._used: dict[str, Any] = {}
        self._new = False

    def get(self, text: str) -> list[Any] | None:
        key = _key(text)
        if self._old is None:
            self._old = self._read()
        entry = self._old.get(key)
        if not isinstance(entry, list):
            return None
        self._used[key] = entry
        return entry

    def put(self, text: str, documents: list[Any]) -> None:
        if not _plain(documents):
            return
        # an alias written once is copied at each use: keep what stays near its size
        if len(json.dumps(documents)) > max(_SMALL, _GROWTH * len(text)):
            return
        self._used[_key(text)] = documents
        self._new = True

    def save(self) -> None:
        """Keep this load's documents, if it parsed anything new (a no-op otherwise)."""
        if not self._new:
            return
        self._new = False
        data = json.dumps({"version": _reader_stamp(), "entries": self._used}).encode()
        # a name of its own per writer (xdist workers, threads), created owner-only
        with contextlib.suppress(OSError):  # e.g. a read-only project: no cache
            own_dir(self.path.parent)
            write_atomic(self.path, data)

    def _read(self) -> dict[str, Any]:
        try:
            # NaN as the reader makes it, one object: a list holding it equals itself
            data = json.loads(self.path.read_bytes(), parse_constant=_CONSTANTS.__getitem__)
        except (OSError, ValueError, KeyError, RecursionError):
            return {}
        if not isinstance(data, dict) or data.get("version") != _reader_stamp():
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}


def cache_for(compose_file: Path) -> DocumentCache:
    """The cache beside ``compose_file``; its directory is made only to save into."""
    return DocumentCache(own_dir_of(compose_file) / _NAME)


@functools.cache
def _reader_stamp() -> str:
    import importlib.util  # finds PyYAML's files without importing it

    spec = importlib.util.find_spec("yaml")
    readers = ("yamlread.py", "yamlshape.py", "yamldepth.py", "values.py")
    files = [Path(__file__).with_name(n) for n in readers]
    files += [Path(spec.origin)] if spec is not None and spec.origin else []
    stamps = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        stamps.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return f"{READER_VERSION};{';'.join(stamps)}"


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _plain(value: Any) -> bool:
    """Made only of what JSON gives back as it was (no marker, no tuple)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float)  # bool is an int
