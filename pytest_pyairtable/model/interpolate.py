"""Variable interpolation exactly as compose does it (compose-go ``template``).

``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``,
``${VAR?message}``, ``${VAR:+alt}``, ``${VAR+alt}``, nesting in defaults and messages,
``$$`` for a literal ``$``; a ``$`` not followed by a name stays as it is. The same
quirks as compose, on purpose: the operator is the first one after the name, a default
runs to the first balanced ``}``, and ``${`` without a valid name is an error.

Where compose stops at the first problem, an ``Interpolator`` collects them all: every
missing required variable once (however many places use it, e.g. through an anchor), and
every unset variable once, for a warning. Fields compose converts after interpolation
(``healthcheck.retries: "$RETRIES"`` becomes a number) are converted by ``walk``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InterpolationError
from .values import Override

_PATTERN = re.compile(
    r"\$(?i:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)"
    r"|\{(?:(?P<braced>[_a-z][_a-z0-9]*(?::?[-+?](?:.*))?)\}|(?P<invalid>)))"
)
_OPERATORS = (":?", "?", ":-", "-", ":+", "+")

Path = tuple[str | int, ...]
Where = str | Path  # a path is made text only when a problem is reported


def show(path: Where) -> str:
    if isinstance(path, str):
        return path
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


MAX_NESTING = 50


class Interpolator:
    def __init__(self, variables: Mapping[str, str] | Callable[[str], str | None]) -> None:
        self.lookup = variables.get if isinstance(variables, Mapping) else variables
        self.looked_up: set[str] = set()
        self.missing: dict[str, tuple[str, list[Where]]] = {}  # name -> (reason, where)
        self.unset: dict[str, list[Where]] = {}  # name -> where, for a warning
        self.problems: list[str] = []  # malformed templates, failed conversions
        self._depth = 0

    # -- one string ----------------------------------------------------------------

    def text(self, value: str, where: Where) -> str:
        if "$" not in value:
            return value
        if self._depth >= MAX_NESTING:  # ${A:-${B:-...}}: each level is a recursion
            self.problems.append(
                f"{show(where)}: ${{...}} nested more than {MAX_NESTING} levels deep. "
                "Fix: nest fewer defaults."
            )
            return ""
        self._depth += 1
        try:
            return _PATTERN.sub(lambda m: self._replace(m.group(0), value, where), value)
        finally:
            self._depth -= 1

    def _get(self, name: str) -> str | None:
        self.looked_up.add(name)
        return self.lookup(name)

    def _replace(self, substring: str, template: str, where: Where) -> str:
        closing = _first_closing_brace(substring)
        rest = ""
        if closing > -1:
            substring, rest = substring[: closing + 1], substring[closing + 1 :]
        match = _PATTERN.search(substring)
        assert match is not None  # it starts with the `$` the pattern matched
        if match.group("escaped"):
            return "$"
        name = match.group("named")
        if not name:
            braced = match.group("braced")
            if not braced:
                self.problems.append(
                    f"{show(where)}: invalid interpolation {template!r}. Fix: write ${{NAME}}, "
                    "${NAME:-default} or ${NAME:?message}, and $$ for a literal $."
                )
                return ""
            applied = self._operator(braced, substring, where)
            if applied is not None:
                return applied + self.text(rest, where)
            name = braced
        value = self._get(name)
        if value is None:
            self.unset.setdefault(name, []).append(where)
            return ""
        return value

    def _operator(self, braced: str, substring: str, where: Where) -> str | None:
        """The value of ``${NAME<op>arg}``, or None when there is no operator."""
        found = [(substring.find(op), n) for n, op in enumerate(_OPERATORS)]
        first = sorted(found, key=lambda f: (f[0] < 0, f[0]))[0]
        op = _OPERATORS[first[1]]
        if op not in braced:
            return None
        name, _, arg = braced.partition(op)
        arg = self.text(arg, where)
        value = self._get(name)
        if op.endswith("?"):
            if value is None or (op == ":?" and value == ""):
                reason = arg or ("is empty or unset" if op == ":?" else "is unset")
                entry = self.missing.setdefault(name, (reason, []))
                entry[1].append(where)
                return ""
            return value
        present = value is not None and (value != "" or ":" not in op)
        if op.endswith("-"):
            return value if present and value is not None else arg
        return arg if present else (value or "")

    # -- a whole document ----------------------------------------------------------

    def walk(self, node: Any, path: Path = ()) -> Any:
        """Interpolate every string value (not keys) and convert where compose converts."""
        if isinstance(node, str):
            value = self.text(node, path)
            cast = _cast_for(path)
            return value if cast is None else self._cast(cast, value, path)
        if isinstance(node, dict):
            return {k: self.walk(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [self.walk(v, (*path, n)) for n, v in enumerate(node)]
        if isinstance(node, Override):
            return Override(self.walk(node.value, path))
        return node

    def _cast(self, cast: Callable[[str], Any], value: str, path: Path) -> Any:
        try:
            return cast(value)
        except ValueError as exc:
            self.problems.append(
                f"{show(path)}: {exc}. Fix: correct it (or the variable it comes from)."
            )
            return value

    # -- the outcome ---------------------------------------------------------------

    def raise_missing(self) -> None:
        problems = [*self.problems, *self.missing_lines()]
        if problems:
            listed = "\n".join(f"  - {p}" for p in problems)
            raise InterpolationError(
                f"{len(problems)} problem(s) interpolating variables:\n{listed}\n"
                "Fix: set the variables in the environment or in the .env file beside the "
                "compose file (or --pyairtable-env-file)."
            )

    def missing_lines(self) -> list[str]:
        return [
            f"{name} ({reason}) in {_places(where)}"
            for name, (reason, where) in self.missing.items()
        ]

    def warnings(self) -> list[str]:
        return [
            f'variable "{name}" is not set, so it is empty (in {_places(where)})'
            for name, where in self.unset.items()
        ]


def _places(where: list[Where]) -> str:
    unique = list(dict.fromkeys(show(w) for w in where))
    more = f" and {len(unique) - 3} more" if len(unique) > 3 else ""
    return ", ".join(unique[:3]) + more


def _first_closing_brace(text: str) -> int:
    first = text.find("}")
    if first > 0 and "{" not in text[2:first]:
        return first  # the common case: nothing nested
    depth, i = 0, 0
    while i < len(text):
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if text[i] == "{":
            depth += 1
            i += 1  # compose skips the character after an opening brace
        i += 1
    return -1


def to_int(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"cannot convert {text!r} to a whole number")
    return int(text)


def to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"cannot convert {text!r} to a number") from None


def to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "y", "yes", "on"):
        return True
    if lowered in ("false", "n", "no", "off"):
        return False
    raise ValueError(f"cannot convert {text!r} to true or false")


# compose-go's interpolateTypeCastMapping: fields whose interpolated text becomes typed
_SERVICE_CASTS = {
    ("cpu_count",): to_int,
    ("cpu_percent",): to_float,
    ("cpu_period",): to_int,
    ("cpu_quota",): to_int,
    ("cpu_rt_period",): to_int,
    ("cpu_rt_runtime",): to_int,
    ("cpus",): to_float,
    ("cpu_shares",): to_int,
    ("init",): to_bool,
    ("deploy", "replicas"): to_int,
    ("deploy", "update_config", "parallelism"): to_int,
    ("deploy", "update_config", "max_failure_ratio"): to_float,
    ("deploy", "rollback_config", "parallelism"): to_int,
    ("deploy", "rollback_config", "max_failure_ratio"): to_float,
    ("deploy", "restart_policy", "max_attempts"): to_int,
    ("deploy", "placement", "max_replicas_per_node"): to_int,
    ("healthcheck", "retries"): to_int,
    ("healthcheck", "disable"): to_bool,
    ("oom_kill_disable",): to_bool,
    ("oom_score_adj",): to_int,
    ("pids_limit",): to_int,
    ("ports", "[]", "target"): to_int,
    ("privileged",): to_bool,
    ("read_only",): to_bool,
    ("scale",): to_int,
    ("stdin_open",): to_bool,
    ("tty",): to_bool,
    ("ulimits", "*"): to_int,
    ("ulimits", "*", "hard"): to_int,
    ("ulimits", "*", "soft"): to_int,
    ("volumes", "[]", "read_only"): to_bool,
    ("volumes", "[]", "volume", "nocopy"): to_bool,
}
_RESOURCE_CASTS = {
    ("networks", "external"),
    ("networks", "internal"),
    ("networks", "attachable"),
    ("networks", "enable_ipv4"),
    ("networks", "enable_ipv6"),
    ("volumes", "external"),
    ("secrets", "external"),
    ("configs", "external"),
}


_CAST_KEYS = {p[-1] for p in _SERVICE_CASTS} | {p[1] for p in _RESOURCE_CASTS}


def _cast_for(path: Path) -> Callable[[str], Any] | None:
    if not path or (path[-1] not in _CAST_KEYS and (len(path) < 4 or path[2] != "ulimits")):
        return None  # the common case, decided cheaply
    if len(path) >= 3 and path[0] == "services":
        rest = tuple(
            "[]" if isinstance(p, int) else "*" if n == 1 and path[2] == "ulimits" else p
            for n, p in enumerate(path[2:])
        )
        return _SERVICE_CASTS.get(rest)
    if len(path) == 3 and (path[0], path[2]) in _RESOURCE_CASTS:
        return to_bool
    return None
