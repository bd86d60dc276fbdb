"""Env files as compose reads them: the project ``.env`` and a service's ``env_file``.

compose's dotenv format: ``KEY=VALUE`` and ``KEY: VALUE``, ``export KEY=...``, ``#``
comments (inline only after a space, on unquoted values), single quotes literal, double
quotes with escapes (``\\n``, ``\\t``, ``\\$``, ``\\0NNN`` octal ...) and values spanning
lines, ``${X}`` interpolated from what ``lookup`` knows then from earlier lines, and a
bare ``NAME`` line that takes ``NAME`` from ``lookup`` (or is skipped). The ``raw``
format is ``docker run --env-file``'s: ``KEY=VALUE`` lines taken as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ..support.errors import ConfigError, InterpolationError
from .interpolate import Interpolator
from .reading import FileRefused, read_bounded

Lookup = Callable[[str], "str | None"]

_EXPORT = re.compile(r"export[\t\n\f\r ]+")
_KEY_CHARS = re.compile(r"[\w.\-\[\]]", re.UNICODE)
_ESCAPES = re.compile(r"\\(?:[abcfnrtv$\"\\]|0[0-9]{0,3})")
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_SPACE = "\t\v\f\r \x85\xa0"  # not newlines


class DotenvError(ValueError):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line


def read_env_file(
    path: Path, lookup: Lookup, into: dict[str, str], *, fmt: str = "", where: str = ""
) -> dict[str, str]:
    """Parse ``path`` into ``into`` (later values win) and return it."""
    where = where or str(path)
    try:
        data = read_bounded(path)
    except (OSError, FileRefused) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(
            f"{where}: cannot read env file {path}: {why}. Fix: create it or correct the path."
        ) from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{where}: env file {path} is not UTF-8 text. Fix: re-save it as text."
        ) from None
    try:
        if fmt in ("", ".env"):
            parse_dotenv(text, lookup, into, str(path))
        elif fmt == "raw":
            parse_raw(text, lookup, into)
        else:
            raise ConfigError(
                f"{where}: env_file format {fmt!r} is not one compose knows. "
                "Fix: leave it out (compose's .env rules) or write format: raw."
            )
    except DotenvError as exc:
        prefix = "" if where == str(path) else f"{where}: "
        raise ConfigError(
            f"{prefix}{path}:{exc.line}: {exc}. Fix that line (one KEY=VALUE a line; "
            "names of letters, digits, _ . - [ ]; quotes closed)."
        ) from None
    return into


def parse_dotenv(text: str, lookup: Lookup, out: dict[str, str], name: str = ".env") -> None:
    # One position moves through the text (slicing off what was read made a file of
    # many lines quadratic: 300,000 lines took minutes).
    line, pos = 1, 0
    while True:
        pos, line = _statement_start(text, pos, line)
        if pos >= len(text):
            return
        key, pos, inherited, line = _key(text, pos, line)
        if " " in key:
            raise DotenvError(line, f"the name {key!r} contains a space")
        if inherited:
            value = lookup(key)
            if value is not None:
                out[key] = value
            continue
        value, pos, line = _value(text, pos, line, out, lookup, name=name)
        out[key] = value


def _statement_start(src: str, pos: int, line: int) -> tuple[int, int]:
    while True:
        start = pos
        while pos < len(src) and src[pos].isspace():
            pos += 1
        line += src.count("\n", start, pos)
        if not src.startswith("#", pos):
            return pos, line
        newline = src.find("\n", pos)
        if newline < 0:
            return len(src), line
        pos = newline


def _key(src: str, pos: int, line: int) -> tuple[str, int, bool, int]:
    export = _EXPORT.match(src, pos)
    if export:
        pos += len("export")
        while pos < len(src) and src[pos] in _SPACE:
            pos += 1
    key, offset, inherited = "", pos, False
    for i in range(pos, len(src)):
        ch = src[i]
        if ch in _SPACE:
            continue
        if ch in "=:\n":
            key, offset, inherited = src[pos:i], i + 1, ch == "\n"
            break
        if not _KEY_CHARS.match(ch):
            first = src[pos:].split("\n", 1)[0]
            raise DotenvError(line, f"unexpected character {ch!r} in the name of {first!r}")
    if inherited and " " not in key:
        line += 1
    while offset < len(src) and src[offset] in _SPACE:
        offset += 1
    return key.rstrip(), offset, inherited, line


def _value(
    src: str, pos: int, line: int, out: dict[str, str], lookup: Lookup, *, name: str
) -> tuple[str, int, int]:
    quote = src[pos : pos + 1]
    if quote not in ("'", '"'):
        end = src.find("\n", pos)
        end = len(src) if end < 0 else end
        value = src[pos:end].split(" #", 1)[0].rstrip()
        return _expand(value, out, lookup, name, line), end + 1, line + 1
    chars: list[str] = []
    escape = False
    start = line
    for i in range(pos + 1, len(src)):
        ch = src[i]
        if ch == "\n":
            line += 1
        if ch != quote:
            if not escape and ch == "\\":
                escape = True
                continue
            if escape:
                escape = False
                chars.append("\\")
            chars.append(ch)
            continue
        if escape:
            escape = False
            chars.append(ch)
            continue
        value = "".join(chars)
        if quote == '"':
            value = _expand(_ESCAPES.sub(_unescape, value), out, lookup, name, line)
        return value, i + 1, line
    raise DotenvError(start, f"the quoted value {src[pos:].split(chr(10), 1)[0]} is never closed")


def _unescape(match: re.Match[str]) -> str:
    text = match.group(0)
    if text == "\\$":
        return "$$"  # a literal dollar for the interpolation that follows
    if text.startswith("\\0"):  # \0101 is Go's \101: exactly three octal digits, < 256
        digits = text[2:]
        if len(digits) == 3 and set(digits) <= set("01234567") and int(digits, 8) < 256:
            return chr(int(digits, 8))
        return text
    if text[1] == "c":
        return text  # in the pattern, yet not an escape Go knows: kept as written
    return _SIMPLE.get(text[1], text[1])


def _expand(value: str, out: dict[str, str], lookup: Lookup, name: str, line: int) -> str:
    def find(key: str) -> str | None:
        found = lookup(key)
        return found if found is not None else out.get(key)

    interp = Interpolator(find)
    value = interp.text(value, f"{name}:{line}")
    if interp.missing or interp.problems:
        if interp.problems:
            raise InterpolationError(f"{name}: {interp.problems[0]}")
        raise InterpolationError(
            f"{name}: {interp.missing_lines()[0]}. Fix: set the variable in the environment "
            "(or above this line in the file), or give it a default: ${NAME:-default}."
        )
    return value


def parse_raw(text: str, lookup: Lookup, out: dict[str, str]) -> None:
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        key, has_value, value = line.partition("=")
        if not key:
            raise DotenvError(n, f"no variable name in {line!r}")
        if " " in key or "\t" in key:
            raise DotenvError(n, f"the name {key!r} contains whitespace")
        if has_value:
            out[key] = value
        elif (found := lookup(line)) is not None:
            out[key] = found
