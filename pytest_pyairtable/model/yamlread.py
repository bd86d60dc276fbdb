"""YAML as compose reads it: go-yaml v3, the YAML 1.2 core schema, libyaml's speed.

libyaml (PyYAML's C parser) builds the node tree; our own constructor turns it into
Python values with go-yaml's rules rather than PyYAML's YAML 1.1 ones:

- no base-60 (``2222:22`` is a string), ``yes``/``no``/``on``/``off`` are strings, only
  ``true``/``True``/``TRUE`` (and false) are booleans; ``010`` is octal, ``0x1F``, ``0o17``,
  ``0b101``, ``1_000`` are integers; ``1e3`` is a float; what overflows stays a string;
- a plain ``2024-01-31`` is a timestamp (``Timestamp``): compose refuses it in a typed
  field, so we keep it distinct from a string;
- duplicate keys are refused (``<<`` counts), merge keys follow go-yaml (explicit keys
  win, then the first map of a merge list), keys must be strings, anchors may be redefined;
- ``!reset`` and ``!override`` become ``Reset``/``Override`` markers for the merge;
- alias expansion is bounded: a document whose expanded size is both over
  ``MAX_EXPANDED`` nodes and ten times its written size is refused (an alias bomb), and
  so is one of over ``MAX_NODES`` nodes, written or expanded (a long string counts a
  node per ``SCALAR_BYTES`` characters where it is expanded: it is copied that often);
- nesting is bounded before libyaml reads the text (yamldepth.py: the message is ours
  whatever limits a libyaml version has), and nesting and size again on its events
  before its composer builds nodes (yamlshape.py: it recurses in C, and 100,000 ``[``
  crash the process).

Aliases share one Python object; nothing downstream mutates a loaded document.
"""

from __future__ import annotations

import base64
import calendar
import functools
import importlib
import math
import re
from typing import Any

from yaml._yaml import CParser

from ..support.errors import ComposeFileError
from .values import Override, Reset, Timestamp
from .yamlshape import MAX_NODES, check_shape, events, too_many_nodes

# Every YAML class from libyaml's own module, which keeps the ones it was first loaded
# with: a process that unloads and reloads the pure-Python `yaml` modules (pytester's
# in-process runs) would otherwise see libyaml's nodes and errors as foreign classes.
libyaml: Any = importlib.import_module("yaml._yaml")
ScalarNode, SequenceNode, MappingNode = (
    libyaml.ScalarNode,
    libyaml.SequenceNode,
    libyaml.MappingNode,
)

MAX_EXPANDED = 100_000
SCALAR_BYTES = 256  # a scalar counts as a node per this many characters, when expanded
_TAG = "tag:yaml.org,2002:"


class _Composer(CParser):
    """libyaml's composer; tags are left for our constructor to resolve."""

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        return ""

    def descend_resolver(self, parent: Any, index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


def load_documents(text: str, where: str) -> list[Any]:
    """Every document of a YAML stream, built with go-yaml's rules."""
    try:
        check_shape(text, where)
        nodes = _compose(text)
    except libyaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is None:
            if hasattr(exc, "reason") and hasattr(exc, "position"):  # a character libyaml refuses
                line = text[: exc.position].count("\n") + 1
                raise ComposeFileError(
                    f"{where}:{line}: YAML error: {exc.reason}. Fix: remove the character "
                    "(is this a text file?)."
                ) from None
            raise ComposeFileError(f"{where}: YAML error: {exc}") from None
        at = f"{where}:{mark.line + 1}:{mark.column + 1}"
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        within = f" ({context} at line {context_mark.line + 1})" if context and context_mark else ""
        raise ComposeFileError(
            f"{at}: YAML error: {getattr(exc, 'problem', exc)}{within}. Fix the file at that line."
        ) from None
    return [_Builder(where).document(node) for node in nodes]


Node = Any  # libyaml's ScalarNode, SequenceNode or MappingNode


def _compose(text: str) -> list[Node]:
    parser = _Composer(text)
    nodes = []
    try:
        while parser.check_node():
            node = parser.get_node()
            if node is not None:
                nodes.append(node)
    except libyaml.ComposerError as exc:
        if "duplicate anchor" not in str(exc):
            raise
        return _compose_events(text)  # YAML 1.2 allows redefining an anchor; rare, so slower
    finally:
        parser.dispose()
    return nodes


def _compose_events(text: str) -> list[Node]:
    """The same node trees, from the event stream, where a later anchor replaces an earlier."""
    stream = events(text)
    documents: list[Node] = []
    anchors: dict[str, Node] = {}

    def node(event: Any) -> Node:
        if isinstance(event, libyaml.AliasEvent):
            if event.anchor not in anchors:
                raise libyaml.ComposerError(None, None, "found undefined alias", event.start_mark)
            return anchors[event.anchor]
        tag = "" if event.tag in (None, "!") else event.tag
        mark: Any = event.start_mark
        built: Node
        if isinstance(event, libyaml.ScalarEvent):
            style = event.style or ("" if event.implicit[0] else '"')
            built = ScalarNode(tag, event.value, mark, None, style)
        elif isinstance(event, libyaml.SequenceStartEvent):
            built = SequenceNode(tag, [], mark, None)
            while not isinstance(child := next(stream), libyaml.SequenceEndEvent):
                built.value.append(node(child))
        else:
            built = MappingNode(tag, [], mark, None)
            while not isinstance(key := next(stream), libyaml.MappingEndEvent):
                built.value.append((node(key), node(next(stream))))
        if event.anchor:
            anchors[event.anchor] = built
        return built

    for event in stream:
        if isinstance(event, libyaml.DocumentStartEvent):
            anchors.clear()
            documents.append(node(next(stream)))
    return documents


class _Builder:
    def __init__(self, where: str) -> None:
        self.where = where
        self.built: dict[int, Any] = {}
        self.sizes: dict[int, int] = {}
        self.building: set[int] = set()  # nodes being built: an alias to one is a cycle
        self.written = 0

    def document(self, node: Node) -> Any:
        return self.build(node)

    def build(self, node: Node) -> Any:
        key = id(node)
        if key in self.built:
            return self.built[key]
        if key in self.building:
            raise self.error(node, "an alias refers to the node it is in (a cycle)", "remove it")
        self.building.add(key)
        self.written += 1
        if isinstance(node, ScalarNode):
            # a long string counts as what it costs to copy out (rendered, sent to a
            # process): 3,000 aliases of one 100 kB string are 300 MB of output
            value, size = self.scalar(node), 1 + len(node.value) // SCALAR_BYTES
        elif isinstance(node, SequenceNode):
            items = [self.build(child) for child in node.value]
            size = 1 + sum(self.sizes[id(child)] for child in node.value)
            value = [item for item in items if not isinstance(item, Reset)]
        elif isinstance(node, MappingNode):
            value, size = self.mapping(node)
        else:
            raise ComposeFileError(f"{self.where}: unexpected YAML node {node!r}")
        if node.tag == "!reset":
            value = Reset()
        elif node.tag == "!override":
            value = Override(value)
        self.built[key], self.sizes[key] = value, size
        self.building.discard(key)
        self.check_expansion(size)  # at every node: stop a bomb before it costs time
        return value

    def check_expansion(self, expanded: int) -> None:
        if expanded > MAX_EXPANDED and expanded > 10 * self.written:
            raise ComposeFileError(
                f"{self.where}: YAML aliases expand this document to over {expanded} nodes "
                f"(written: {self.written}), over the limit of {MAX_EXPANDED}. Fix: use "
                "fewer nested aliases (this is the shape of a 'billion laughs' attack)."
            )
        if max(expanded, self.written) > MAX_NODES:  # every later step walks each node
            raise too_many_nodes(self.where)

    def mapping(self, node: Node) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        lines: dict[tuple[str, str], int] = {}
        merges: list[Node] = []
        size = 1
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode):
                ident = (key_node.value, "")
                if ident in lines:
                    raise self.error(
                        key_node,
                        f"mapping key {key_node.value!r} already defined at line {lines[ident]}",
                        "remove one of the two",
                    )
                lines[ident] = key_node.start_mark.line + 1
                if key_node.tag == "" and key_node.style == "" and key_node.value == "<<":
                    merges.append(value_node)
                    size += self.count(value_node)
                    continue
            key = self.build(key_node)
            if not isinstance(key, str):
                raise self.error(key_node, f"non-string key {key!r}", "quote the key")
            result[key] = self.build(value_node)
            size += 1 + self.sizes[id(value_node)]
        for merge in merges:
            for source in self.merge_sources(merge):
                for k, v in source.items():
                    result.setdefault(k, v)
        return result, size

    def merge_sources(self, node: Node) -> list[dict[str, Any]]:
        children = node.value if isinstance(node, SequenceNode) else [node]
        sources = []
        for child in children:
            value = self.build(child)
            if not isinstance(child, MappingNode) or not isinstance(value, dict):
                raise self.error(
                    node,
                    "a merge key (<<) needs a mapping or a list of mappings",
                    "merge only anchors of mappings",
                )
            sources.append(value)
        return sources

    def count(self, node: Node) -> int:
        self.build(node)
        return self.sizes[id(node)]

    def scalar(self, node: Node) -> Any:
        tag, text = node.tag, node.value
        if tag == "":
            return resolve_plain(text) if node.style == "" else text
        short = tag[len(_TAG) :] if tag.startswith(_TAG) else ""
        if short == "binary":
            try:
                return base64.b64decode(text).decode("utf-8", "replace")
            except ValueError:
                raise self.error(node, "invalid !!binary value", "write base64") from None
        expected = _TAGGED.get(short)
        if expected is None:  # !!str, and tags go-yaml does not resolve (!reset, !custom)
            return text
        value = resolve_plain(text)
        if short == "float" and type(value) is int:
            return float(value)
        if type(value) is not expected:
            raise self.error(node, f"cannot decode {text!r} as a !!{short}", "fix the tag")
        return value

    def error(self, node: Node, problem: str, fix: str) -> ComposeFileError:
        mark = node.start_mark
        return ComposeFileError(
            f"{self.where}:{mark.line + 1}:{mark.column + 1}: {problem}. Fix: {fix}."
        )


_SPECIAL: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_TAGGED: dict[str, type] = {
    "int": int,
    "float": float,
    "bool": bool,
    "null": type(None),
    "timestamp": Timestamp,
}
_INT64 = (-(1 << 63), (1 << 63) - 1)
_GO_INT = re.compile(r"([+-]?)(0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[1-9][0-9]*|0)")
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+(_[0-9]+)*([eE][-+]?[0-9]+(_[0-9]+)*)?")
_TIME = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:[Tt](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))"
    r"|(?: (\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?))?"
)


@functools.lru_cache(maxsize=8192)
def resolve_plain(text: str) -> Any:  # noqa: PLR0911 - go-yaml v3 resolve(), case for case
    """The value go-yaml v3 gives an untagged plain scalar."""
    if text in _SPECIAL:
        return _SPECIAL[text]
    first = text[0]
    if first == ".":
        return _go_float(text) if _DOT_FLOAT.fullmatch(text) else text
    if first not in "+-0123456789":
        return text
    if _timestamp(text):
        return Timestamp(text)
    plain = text.replace("_", "")
    match = _GO_INT.fullmatch(plain) if len(plain) <= 70 else None  # longer: no 64-bit int
    if match:
        sign, digits = match.groups()
        prefix = digits[1:2].lower() if digits[0] == "0" else ""
        base = {"x": 16, "o": 8, "b": 2, "": 10}.get(prefix, 8)  # a leading 0 is octal
        value = int(digits[2:] if prefix.isalpha() else digits, base) * (-1 if sign == "-" else 1)
        if _INT64[0] <= value <= _INT64[1] or (not sign and value < 1 << 64):
            return value  # int64, else uint64 (which takes no sign)
    if _YAML_FLOAT.fullmatch(plain):
        return _go_float(plain)
    return text


def _go_float(text: str) -> Any:
    value = float(text)
    return text if math.isinf(value) else value  # Go refuses what overflows


def _timestamp(text: str) -> bool:
    match = _TIME.fullmatch(text)
    if not match:
        return False
    year, month, day = (int(g) for g in match.groups()[:3])
    clock = [int(g) for g in match.groups()[3:] if g is not None]
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        return False
    return not clock or (clock[0] < 24 and clock[1] < 60 and clock[2] < 60)
