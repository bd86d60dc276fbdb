"""A log probe's search: each byte of a growing log read once, each search time-limited.

The pattern runs on the ``regex`` engine (the standard ``re`` syntax) with a time limit
per search and the GIL released while it runs: ``re`` holds the GIL for a whole search,
so a pattern that backtracks exponentially (``^(a+)+$`` against 41 ``a`` and a ``b``)
froze the run, its timeout and Ctrl-C included. What the loader can tell is pathological
it refuses (model/regexcheck.py); this bounds the rest.

Each attempt reads at most ``CHUNK`` new bytes and searches them after the last
``CARRY`` characters already searched, so a match may span lines (up to ``CARRY``) and
memory stays bounded whatever the log's size; a log that shrank (a new one) is read
again from its start.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Any

CHUNK = 1024 * 1024  # new bytes read per attempt
CARRY = 64 * 1024  # characters searched again with the next chunk
MATCH_LIMIT = 0.5  # seconds one search may take (the engine overruns it up to ~2x)


class PatternTooSlow(Exception):
    """A search ran past MATCH_LIMIT: the pattern backtracks; waiting cannot help."""


def compile_pattern(pattern: str) -> Any:
    """The pattern on the regex engine, with ``^``/``$`` anchoring at lines; raises
    ValueError (the engine's message) when it is not a regular expression there."""
    import regex

    try:
        return regex.compile(pattern, regex.MULTILINE | regex.VERSION0)
    except regex.error as exc:
        raise ValueError(str(exc)) from None


class LogScan:
    def __init__(self, pattern: str, path: Path, *, start: int = 0) -> None:
        self.pattern = pattern
        self.compiled = compile_pattern(pattern)
        self.path = path
        self.offset = start  # where this run of the service began writing
        self.carry = ""  # text already searched, kept for a match across chunks
        self.carry_start = 0  # where the search starts in carry + new (see _keep)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def found(self) -> bool:
        """Whether the pattern matches the log so far (reading at most CHUNK new bytes)."""
        with open(self.path, "rb") as f:
            if os.fstat(f.fileno()).st_size < self.offset:  # a new log: read it anew
                self.offset, self.carry, self.carry_start = 0, "", 0
                self.decoder.reset()
            f.seek(self.offset)
            data = f.read(CHUNK)
        if not data and self.offset:
            return False  # nothing new since a search that did not match
        self.offset += len(data)
        text = self.carry + self.decoder.decode(data)
        try:
            hit = self.compiled.search(text, self.carry_start, timeout=MATCH_LIMIT, concurrent=True)
        except TimeoutError:
            raise PatternTooSlow(
                f"/{self.pattern}/ took more than {MATCH_LIMIT:g}s to search "
                f"{len(text)} characters of output: it backtracks without bound"
            ) from None
        self._keep(text)
        return hit is not None

    def _keep(self, text: str) -> None:
        """Keep the last CARRY characters from a line start, plus the character before
        them: searching from 1 keeps ``^`` and ``\\b`` true to the text around."""
        cut = max(0, len(text) - CARRY)
        line = text.find("\n", cut)
        start = line + 1 if line != -1 else cut
        self.carry = text[max(0, start - 1) :]
        self.carry_start = 1 if start > 0 else 0
