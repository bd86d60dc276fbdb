"""Secrets masked in pytest's own structures, values only: a failure's source lines and
the code of its traceback stay as written (never rewritten, never cut); its failure
lines (``E ...``), locals (``--showlocals``), arguments, crash message, captured output
and sections are masked, as is a recorded warning's message (the warnings summary).

A value that is a word of the code the traceback shows (a function's name) is left as
written there too (``Redactor.sparing``).
"""

from __future__ import annotations

import copy
import re
import warnings
from typing import Any

from ...support.redact import MASK, Redactor, is_secret_name

_FAIL = "E   "
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A backslash is read only as an escape: an unclosed string is one linear scan.
_STRING = re.compile(r"(['\"])(?:\\.|(?!\1)[^\\])*\1")
_LOCAL = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<eq>\s*= )(?P<value>.*)", re.S)
_QUOTED = re.compile(r"[rbuf]*(['\"])(?:\\.|(?!\1)[^\\])*\1")


def mask_longrepr(longrepr: Any, redact: Redactor) -> Any:
    """``longrepr`` masked in place where it is pytest's structure (returned), or a new
    one: a text (a skip's reason, ``pytest.fail(pytrace=False)``) masked as a value."""
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return (*longrepr[:2], redact(str(longrepr[2])))
    if isinstance(longrepr, str):
        return redact(longrepr)
    chain = getattr(longrepr, "chain", None)
    tracebacks = [(tb, crash) for tb, crash, _ in chain] if chain else []
    if not tracebacks and hasattr(longrepr, "reprtraceback"):
        tracebacks = [(longrepr.reprtraceback, longrepr.reprcrash)]
    if not tracebacks:
        return None  # not pytest's: the caller masks its text
    redact = redact.sparing(_code_words(tb for tb, _ in tracebacks))
    for traceback, crash in tracebacks:
        for entry in getattr(traceback, "reprentries", ()):
            _mask_entry(entry, redact)
        if crash is not None:
            crash.message = redact(crash.message)
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        crash.message = redact(crash.message)
    longrepr.sections = [(name, redact(text), sep) for name, text, sep in longrepr.sections]
    return longrepr


def _mask_entry(entry: Any, redact: Redactor) -> None:
    if not hasattr(entry, "reprlocals"):  # ReprEntryNative: Python's own traceback text
        entry.lines = [_native(text, redact) for text in entry.lines]
        return
    if entry.style == "value":
        entry.lines = [redact(line) for line in entry.lines]
    else:
        failing = False  # pytest: from the first "E" line on, every line is the failure's
        lines = []
        for line in entry.lines:
            failing = failing or line.startswith(_FAIL)
            lines.append(redact(line) if failing else line)
        entry.lines = lines
    if entry.reprlocals is not None:
        entry.reprlocals.lines = [_local(line, redact) for line in entry.reprlocals.lines]
    if entry.reprfuncargs is not None:
        entry.reprfuncargs.args = [
            (name, _value(name, str(value), redact)) for name, value in entry.reprfuncargs.args
        ]
    if entry.reprfileloc is not None:
        entry.reprfileloc.message = redact(entry.reprfileloc.message)


def _native(text: str, redact: Redactor) -> str:
    """``--tb=native``: the ``File`` lines and the indented source stay, the rest (the
    exception's text) is masked."""
    return "".join(
        line if line.startswith(("  File ", "    ")) else redact(line)
        for line in text.splitlines(keepends=True)
    )


def _local(line: str, redact: Redactor) -> str:
    found = _LOCAL.fullmatch(line)
    if found is None:
        return redact(line)
    name, value = found.group("name"), found.group("value")
    return line[: found.start("value")] + _value(name, value, redact)


def _value(name: str, value: str, redact: Redactor) -> str:
    """A variable's repr: a string under a secret's name is masked whole (its quotes
    kept), anything else as text."""
    quoted = _QUOTED.fullmatch(value)
    if quoted is not None and is_secret_name(name) and len(value) > 2:
        start = value.index(quoted.group(1))
        return f"{value[: start + 1]}{MASK}{quoted.group(1)}"
    return redact(value)


def _code_words(tracebacks: Any) -> set[str]:
    """The names the traceback's source lines use (not their string literals)."""
    words: set[str] = set()
    for traceback in tracebacks:
        for entry in getattr(traceback, "reprentries", ()):
            for line in getattr(entry, "lines", ()):
                if hasattr(entry, "reprlocals") and line.startswith(_FAIL):
                    break
                words.update(_WORD.findall(_STRING.sub("", line)))
    return words


def mask_sections(sections: list[tuple[str, str]], redact: Redactor) -> list[tuple[str, str]]:
    """Captured output (stdout, stderr, log), as ``-rA``, junit and xdist carry it."""
    return [(title, redact(text)) for title, text in sections]


def mask_warning(record: warnings.WarningMessage, redact: Redactor) -> None:
    """A recorded warning's message, masked before the warnings summary (and any other
    plugin) formats it; its file, line and source line stay as written."""
    text = str(record.message)
    shown = redact(text)
    if shown == text:
        return
    masked: Warning
    try:
        masked = copy.copy(record.message)  # type: ignore[assignment]
        masked.args = (shown,)
        if str(masked) != shown:
            raise TypeError(str(type(masked)))
    except Exception:  # a warning class of its own making: its category is kept apart
        masked = UserWarning(shown)
    record.message = masked
