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

from ..errors import ConfigError, InterpolationError
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
    line = 1
    rest = text
    while True:
        rest, line = _statement_start(rest, line)
        if not rest:
            return
        key, rest, inherited, line = _key(rest, line)
        if " " in key:
            raise DotenvError(line, f"the name {key!r} contains a space")
        if inherited:
            value = lookup(key)
            if value is not None:
                out[key] = value
            continue
        value, rest, line = _value(rest, line, out, lookup, name)
        out[key] = value


def _statement_start(src: str, line: int) -> tuple[str, int]:
    while True:
        stripped = src.lstrip()
        line += src[: len(src) - len(stripped)].count("\n")
        if not stripped.startswith("#"):
            return stripped, line
        newline = stripped.find("\n")
        if newline < 0:
            return "", line
        src = stripped[newline:]


def _key(src: str, line: int) -> tuple[str, str, bool, int]:
    if _EXPORT.match(src):
        src = src[len("export") :].lstrip(_SPACE)
    key, offset, inherited = "", 0, False
    for i, ch in enumerate(src):
        if ch in _SPACE:
            continue
        if ch in "=:\n":
            key, offset, inherited = src[:i], i + 1, ch == "\n"
            break
        if not _KEY_CHARS.match(ch):
            first = src.split("\n", 1)[0]
            raise DotenvError(line, f"unexpected character {ch!r} in the name of {first!r}")
    if inherited and " " not in key:
        line += 1
    return key.rstrip(), src[offset:].lstrip(_SPACE), inherited, line


def _value(
    src: str, line: int, out: dict[str, str], lookup: Lookup, name: str
) -> tuple[str, str, int]:
    quote = src[:1]
    if quote not in ("'", '"'):
        value, _, rest = src.partition("\n")
        value = value.split(" #", 1)[0].rstrip()
        return _expand(value, out, lookup, name, line), rest, line + 1
    chars: list[str] = []
    escape = False
    start = line
    for i in range(1, len(src)):
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
        return value, src[i + 1 :], line
    raise DotenvError(start, f"the quoted value {src.split(chr(10), 1)[0]} is never closed")


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
        problem = (interp.problems or interp.missing_lines())[0]
        raise InterpolationError(f"{name}: {problem}")
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
