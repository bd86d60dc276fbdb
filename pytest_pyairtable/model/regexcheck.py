"""Log-probe patterns that are sure to backtrack exponentially, refused at load.

The shape: a repeat whose body, apart from parts that may match nothing, is itself an
unbounded repeat: ``(a+)+``, ``(a*)*``, ``(\\w+\\s?)+``, ``(a?b*)*``. A text that almost matches
(41 ``a`` and a ``b`` for ``^(a+)+$``) makes a backtracking engine try every way of
splitting it among the repeats, 2**n of them. ``(\\d+\\.)+`` is not refused: the ``.``
each repetition needs leaves one way to split. What this misses (``(a|aa)+``) the probe
still bounds: each search has a time limit (probes/logscan.py).

Read from the standard library's own parse tree (``re._parser``, ``sre_parse`` before
3.11); if a later Python changes that tree, nothing is refused and the time limit stays.
"""

from __future__ import annotations

import re
from typing import Any


def _parser() -> Any:
    parser = getattr(re, "_parser", None)
    if parser is None:  # Python 3.10
        import sre_parse as parser  # type: ignore[no-redef,unused-ignore]
    return parser


def nested_repeat(pattern: str) -> bool:
    """Whether ``pattern`` (valid for ``re``) nests an unbounded repeat in another."""
    try:
        parser = _parser()
        tree = parser.parse(pattern)
        consts = parser  # the opcodes are re-exported by the parser module
        return _walk(list(tree), consts)
    except Exception:  # an unexpected tree: leave it to the time limit
        return False


def _repeat(op: Any, consts: Any) -> bool:
    return op in (consts.MAX_REPEAT, consts.MIN_REPEAT)


def _children(op: Any, av: Any, consts: Any) -> list[list[Any]]:
    if _repeat(op, consts):
        return [list(av[2])]
    if op is consts.SUBPATTERN:
        return [list(av[-1])]
    if op is consts.BRANCH:
        return [list(branch) for branch in av[1]]
    if op in (consts.ASSERT, consts.ASSERT_NOT):
        return [list(av[1])]
    return []


def _nullable(item: tuple[Any, Any], consts: Any) -> bool:
    op, av = item
    if _repeat(op, consts):
        return bool(av[0] == 0)
    if op is consts.SUBPATTERN:
        return all(_nullable(i, consts) for i in av[-1])
    return bool(op is consts.AT or op in (consts.ASSERT, consts.ASSERT_NOT))


def _unbounded_repeat(item: tuple[Any, Any], consts: Any) -> bool:
    """An unbounded repeat, possibly inside groups: ``a+``, ``(a*)``, ``((\\w+))``."""
    op, av = item
    if _repeat(op, consts):
        return bool(av[1] == consts.MAXREPEAT)
    if op is consts.SUBPATTERN:
        rest = [i for i in av[-1] if not _nullable(i, consts)] or list(av[-1])
        return len(rest) == 1 and _unbounded_repeat(rest[0], consts)
    return False


def _has_unbounded(item: tuple[Any, Any], consts: Any) -> bool:
    """An unbounded repeat, or a group holding one among its parts: ``(a?b*)``."""
    op, av = item
    if op is consts.SUBPATTERN:
        return any(_has_unbounded(i, consts) for i in av[-1])
    return _repeat(op, consts) and bool(av[1] == consts.MAXREPEAT)


def _walk(seq: list[Any], consts: Any) -> bool:
    for op, av in seq:
        if _repeat(op, consts) and av[1] == consts.MAXREPEAT:
            body = list(av[2])
            solid = [i for i in body if not _nullable(i, consts)]
            if len(solid) == 1 and _unbounded_repeat(solid[0], consts):
                return True
            if not solid and any(_has_unbounded(i, consts) for i in body):
                return True  # (a?b*)*: nothing required, so any split of b's will do
        if any(_walk(child, consts) for child in _children(op, av, consts)):
            return True
    return False
