"""``uniqueItems`` as compose's JSON-schema validator (santhosh-tekuri/jsonschema) decides.

Up to 20 items it compares each with every earlier one, and a number equals an earlier
*numeric string* (8080 after "8080" is a duplicate; "8080" after 8080 is not); beyond
20 items it hashes first, so only equal values of the same type meet. Ports written
twice in different forms depend on this, so it is kept exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

from .values import Timestamp, sprint

_RATIONAL = re.compile(r"[+-]?((\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|\d+/\d+)")


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, Timestamp):
        return "timestamp"
    return type(value).__name__


def duplicate(items: list[Any]) -> tuple[int, int] | None:
    """The first pair of equal items, as compose's validator finds it."""
    pairs = (
        ((j, i) for i in range(1, len(items)) for j in range(i))
        if len(items) <= 20
        else _same_hash(items)
    )
    for j, i in pairs:
        if _go_equals(items[i], items[j]):
            return j, i
    return None


def _same_hash(items: list[Any]) -> Iterator[tuple[int, int]]:
    seen: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        key = repr(_strict(item))
        yield from ((j, i) for j in seen.get(key, []))
        seen.setdefault(key, []).append(i)


def _strict(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted((k, _strict(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_strict(v) for v in value]
    if _type(value) == "number":
        return ("number", _rational(sprint(value)))
    return (_type(value), value)


def _go_equals(later: Any, earlier: Any) -> bool:
    if isinstance(later, dict):
        return (
            isinstance(earlier, dict)
            and len(later) == len(earlier)
            and all(k in earlier and _go_equals(v, earlier[k]) for k, v in later.items())
        )
    if isinstance(later, list):
        return (
            isinstance(earlier, list)
            and len(later) == len(earlier)
            and all(_go_equals(a, b) for a, b in zip(later, earlier, strict=True))
        )
    if _type(later) == "number":  # both printed, then read as rationals
        mine, theirs = _rational(sprint(later)), _rational(sprint(earlier))
        return mine is not None and mine == theirs
    return _type(later) == _type(earlier) and later == earlier


def _rational(text: str) -> Fraction | None:
    if not _RATIONAL.fullmatch(text):
        return None
    return Fraction(text)
