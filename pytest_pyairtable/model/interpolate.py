"""Compose variable interpolation and ``.env`` parsing, with compose's precedence.

Supported: ``$VAR``, ``${VAR}``, ``${VAR:-d}``, ``${VAR-d}``, ``${VAR:?msg}``,
``${VAR?msg}``, ``${VAR:+r}``, ``${VAR+r}``, nesting inside defaults, and ``$$``.
Every missing required variable in a document is collected, so the user sees all of
them in one error instead of fixing them one run at a time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InterpolationError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


@dataclass
class Interpolator:
    variables: Mapping[str, str]
    missing: list[str] = field(default_factory=list)
    unset: set[str] = field(default_factory=set)

    def text(self, value: str, where: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(value):
            ch = value[i]
            if ch != "$":
                out.append(ch)
                i += 1
                continue
            nxt = value[i + 1 : i + 2]
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "{":
                end = _closing_brace(value, i + 2)
                if end < 0:
                    raise InterpolationError(
                        f"{where}: unterminated '${{' in {value!r}. Fix: close it with '}}' "
                        "or write '$$' for a literal '$'."
                    )
                out.append(self._braced(value[i + 2 : end], where))
                i = end + 1
            else:
                match = _NAME.match(value, i + 1)
                if match is None:
                    out.append("$")
                    i += 1
                    continue
                out.append(self._lookup(match.group(0)))
                i = match.end()
        return "".join(out)

    def _lookup(self, name: str) -> str:
        if name in self.variables:
            return self.variables[name]
        self.unset.add(name)
        return ""

    def _braced(self, body: str, where: str) -> str:
        match = _NAME.match(body)
        if match is None:
            raise InterpolationError(
                f"{where}: invalid interpolation '${{{body}}}'. "
                "Fix: use ${NAME}, ${NAME:-default} or ${NAME:?message}."
            )
        name, rest = match.group(0), body[match.end() :]
        if not rest:
            return self._lookup(name)
        is_set = name in self.variables
        value = self.variables.get(name, "")
        for op in (":-", ":?", ":+", "-", "?", "+"):
            if rest.startswith(op):
                arg = rest[len(op) :]
                present = is_set and (value != "" or ":" not in op)
                if op.endswith("-"):
                    return value if present else self.text(arg, where)
                if op.endswith("+"):
                    return self.text(arg, where) if present else ""
                if not present:
                    why = self.text(arg, where) or (
                        "is empty or unset" if ":" in op else "is unset"
                    )
                    self.missing.append(f"{name} ({why}) in {where}")
                return value
        raise InterpolationError(
            f"{where}: unsupported modifier in '${{{body}}}'. "
            "Fix: use one of :- - :? ? :+ + after the variable name."
        )

    def walk(self, node: Any, where: str = "") -> Any:
        """Interpolate every string value (not keys) of a loaded YAML document."""
        if isinstance(node, str):
            return self.text(node, where or "value")
        if isinstance(node, Mapping):
            return {k: self.walk(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [self.walk(v, f"{where}[{n}]") for n, v in enumerate(node)]
        return node

    def raise_missing(self) -> None:
        if self.missing:
            listed = "\n".join(f"  - {m}" for m in self.missing)
            raise InterpolationError(
                f"{len(self.missing)} required variable(s) missing:\n{listed}\n"
                "Fix: set them in the environment or in the .env file beside the compose file."
            )


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def parse_env_file(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Read a ``.env`` file as compose does: ``KEY=VALUE`` lines, quotes, ``export``, comments.

    Unquoted and double-quoted values may refer to variables defined earlier in the file
    or in ``environ``; single-quoted values are literal.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(
            f"cannot read env file {path}: {exc.strerror}. Fix: create it or pass another path "
            "with --pyairtable-env-file."
        ) from None
    result: dict[str, str] = {}
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _NAME.fullmatch(key):
            raise ConfigError(
                f"{path}:{lineno}: expected KEY=VALUE, got {raw!r}. "
                "Fix: one variable per line, names of letters, digits and underscores."
            )
        value = value.strip()
        scope = {**(environ or {}), **result}
        if value[:1] == "'" and value.endswith("'") and len(value) >= 2:
            result[key] = value[1:-1]
            continue
        if value[:1] == '"' and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), value[1:-1])
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        result[key] = Interpolator(scope).text(value, f"{path.name}:{lineno}")
    return result
