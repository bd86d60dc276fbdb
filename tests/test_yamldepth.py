"""Nesting read from the text (yamldepth.py), held to the parser's own reading.

The refusal of deep nesting is ours whatever libyaml a PyYAML wheel bundles: the text
is counted before libyaml reads it, so that no limit of libyaml's can speak first. The
count must never exceed the depth of libyaml's events (no file libyaml reads as
shallow is refused), must equal it for flow collections (where libyaml's scanner runs
ahead of its events) and reach at least half of it for block ones (an indentless
sequence, ``key:`` then ``- x`` at the same column, is a level to the parser and not to
the count; the event check after it catches those).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_pyairtable.model.yamldepth import MAX_DEPTH, deepest, too_deep
from pytest_pyairtable.model.yamlread import load_documents
from pytest_pyairtable.support.errors import ComposeFileError

libyaml: Any = importlib.import_module("yaml._yaml")
PROPERTY = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def events_depth(text: str) -> int | None:
    """How deep libyaml's events nest; None where libyaml refuses the text."""
    try:
        return max((depth for depth, _ in _levels(text)), default=0)
    except libyaml.YAMLError:
        return None


def first_line_deeper_than(limit: int, text: str) -> int:
    """The line of the first collection libyaml opens deeper than ``limit``."""
    return next(line for depth, line in _levels(text) if depth > limit)


def _levels(text: str) -> Iterator[tuple[int, int]]:
    """Each collection libyaml opens: its depth and its line."""
    parser = libyaml.CParser(text)
    depth = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, libyaml.SequenceStartEvent | libyaml.MappingStartEvent):
                depth += 1
                yield depth, event.start_mark.line + 1
            elif isinstance(event, libyaml.SequenceEndEvent | libyaml.MappingEndEvent):
                depth -= 1
    finally:
        parser.dispose()


# Strings full of what could be mistaken for structure: the dumper quotes them, folds
# them over lines or writes them as block scalars, and the count must see through it.
TRICKY = [*"ab[]{}'\"#:-?|>,&*!%@\\\n\t ", "- ", ": ", " #", "[[", "{{", "\r\n", "\u2028"]
texts = st.lists(st.sampled_from(TRICKY), max_size=10).map("".join)
trees = st.recursive(
    st.one_of(texts, st.integers(), st.none()),
    lambda kids: st.one_of(
        st.lists(kids, min_size=1, max_size=3),
        st.dictionaries(texts, kids, min_size=1, max_size=3),
    ),
    max_leaves=30,
)
STYLES = st.sampled_from([None, "'", '"', "|", ">"])


def dumped(tree: Any, flow: bool | None, style: str | None, indent: int, width: int) -> str:
    return yaml.dump(
        tree,
        default_flow_style=flow,
        default_style=style,
        indent=indent,
        width=width,
        allow_unicode=True,
    )


@PROPERTY
@given(trees, STYLES, st.integers(2, 6), st.sampled_from([8, 30, 80]))
def test_flow_collections_count_as_the_parser_reads_them(
    tree: Any, style: str | None, indent: int, width: int
) -> None:
    text = dumped(tree, True, style, indent, width)
    assert deepest(text) == events_depth(text), text


@PROPERTY
@given(trees, st.sampled_from([None, False]), STYLES, st.integers(2, 6), st.sampled_from([8, 80]))
@example({"": "\u2028: [["}, None, "|", 2, 8)  # a block scalar's line after an LS (found)
def test_block_collections_count_at_least_half_never_more(
    tree: Any, flow: bool | None, style: str | None, indent: int, width: int
) -> None:
    text = dumped(tree, flow, style, indent, width)
    levels = events_depth(text)
    assert levels is not None, text
    assert levels / 2 <= deepest(text) <= levels, text


INSERTS = [" # [[{", "#[", " [", "\n#{[", " &a ", " !t ", "\n- ", "\n  ", "'", "|\n", "{"]


@PROPERTY
@given(
    trees,
    st.sampled_from([None, True, False]),
    STYLES,
    st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(INSERTS)), min_size=1, max_size=4),
)
def test_no_text_counts_deeper_than_the_parser_reads_it(
    tree: Any, flow: bool | None, style: str | None, inserts: list[tuple[int, str]]
) -> None:
    text = dumped(tree, flow, style, 2, 20)
    for where, insert in inserts:  # comments, brackets, anchors, entries, quotes anywhere
        at = where % (len(text) + 1)
        text = text[:at] + insert + text[at:]
    levels = events_depth(text)
    if levels is not None:  # what libyaml refuses is refused in libyaml's words
        assert deepest(text) <= levels, text


def _flow_sequences(n: int) -> str:
    return "x: " + "[" * (n - 1) + "]" * (n - 1) + "\n"


def _flow_mappings(n: int) -> str:
    return "x: " + "{a: " * (n - 1) + "1" + "}" * (n - 1) + "\n"


def _indented(n: int) -> str:
    return "".join(f"{'  ' * level}k{level}:\n" for level in range(n)) + "  " * n + "v\n"


def _compact(n: int) -> str:
    return "x:\n  " + "- " * (n - 1) + "v\n"


def _indentless(n: int) -> str:  # a sequence at its key's column: levels only to the parser
    lines = [f"{'  ' * (level // 2)}{'k:' if level % 2 == 0 else '- '}" for level in range(n)]
    lines[-1] += "v" if lines[-1].endswith("- ") else " v"
    return "\n".join(lines) + "\n"


SHAPES = [_flow_sequences, _flow_mappings, _indented, _compact, _indentless]


@pytest.mark.parametrize("shape", SHAPES, ids=[s.__name__.strip("_") for s in SHAPES])
def test_a_file_nested_over_the_limit_is_refused_at_its_line(shape: Any) -> None:
    at_limit, over = shape(MAX_DEPTH), shape(MAX_DEPTH + 1)
    assert events_depth(at_limit) == MAX_DEPTH
    load_documents(at_limit, "compose.yml")
    with pytest.raises(ComposeFileError) as info:
        load_documents(over, "compose.yml")
    line = first_line_deeper_than(MAX_DEPTH, over)
    assert str(info.value) == (
        f"compose.yml:{line}: YAML nested more than {MAX_DEPTH} levels deep. "
        "Fix: flatten it (no compose setting needs such depth)."
    )


@pytest.mark.parametrize("after", ["z: [1]\n", "z: " + "[" * 80 + "]" * 80 + "\n"])
def test_levels_close_where_the_indentation_returns(after: str) -> None:
    text = _indented(90) + after  # 90 levels, then back to the top
    assert deepest(text) == events_depth(text) == max(90, after.count("[") + 1)
    load_documents(text, "compose.yml")


def test_depth_is_refused_before_libyaml_reads_ahead() -> None:
    # libyaml's scanner reads ahead of the events it gives (up to 1,024 characters, for a
    # key that may follow): its syntax errors, or limits of its own, would speak first
    text = "x: " + "[" * (MAX_DEPTH + 50) + "@"
    with pytest.raises(ComposeFileError, match=f"compose.yml:1: YAML nested more than {MAX_DEPTH}"):
        load_documents(text, "compose.yml")


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 1000, 5000, 200_000])
def test_deep_flow_is_counted_before_any_parser(levels: int) -> None:
    text = "services:\n  a:\n    image: x\n    x-deep: " + "[" * levels + "]" * levels + "\n"
    assert too_deep(text) == 4


BRACKETS = "[{" * 2500
NOT_LEVELS = {
    "single-quoted": f"a: '{BRACKETS}'\n",
    "double-quoted": f'a: "{BRACKETS}"\nb: ["{BRACKETS}", x]\n',
    "quoted-over-lines": f'a: "x\n  {BRACKETS}\n  y"\nb: [1]\n',
    "comment": f"# {BRACKETS}\na: 1 # {BRACKETS}\nb: [x, # {BRACKETS}\n  y]\n",
    "block-scalar": f"a: |\n  {BRACKETS}\n\n  {BRACKETS}\nb: >-\n    {BRACKETS}\nc: [1]\n",
    "block-scalar-hash": f"a: |\n  # {BRACKETS}\n  {BRACKETS}\n",  # no comment in there
    "plain": f"a: echo {BRACKETS}\n",
    "plain-over-lines": f"a: echo\n  {BRACKETS}\nb: [1]\n",
    "quote-in-flow-plain": f"a: [x\n  'y, z]\nb: '{BRACKETS}'\n",  # 'y is no quoted scalar
    "key": f"x{BRACKETS[:1000]}: 1\n",  # a key is at most 1,024 characters
}


@pytest.mark.parametrize("brk", ["\r\n", "\r", "\x85", "\u2028", "\u2029"])
def test_every_line_break_libyaml_reads_is_one_here(brk: str) -> None:
    """NEL, LS and PS end a line for libyaml as \\n does: a block scalar's lines after one
    hold no levels, and the line of a refusal is libyaml's."""
    shallow = brk.join(["a: |", "  [[", "  x", "b:", "  - [1]", ""])
    assert deepest(shallow) == events_depth(shallow) == 3
    text = shallow + _flow_sequences(MAX_DEPTH + 1)
    assert too_deep(text) == first_line_deeper_than(MAX_DEPTH, text) == 6
    with pytest.raises(ComposeFileError, match=f"compose.yml:6: YAML nested more than {MAX_DEPTH}"):
        load_documents(text, "compose.yml")


@pytest.mark.parametrize("text", NOT_LEVELS.values(), ids=NOT_LEVELS.keys())
def test_brackets_in_scalars_and_comments_are_no_levels(text: str) -> None:
    assert deepest(text) == events_depth(text) <= 2
    assert load_documents(text, "compose.yml")
