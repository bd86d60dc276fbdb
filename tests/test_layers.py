"""The package's folders are its layers, and imports point down only.

Every import counts, also those made inside a function or only for type checking:
each one ties the importing module to what it names. Inside ``model/`` a loader and its
parts may share types in a loop; nowhere else may modules import each other in a circle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_pyairtable"
# From the ground up; a module may import its own layer and the ones before it.
LAYERS = ("support", "model", "probes", "backends", "engine", "state", "session", "frontends")
ENTRY_POINTS = {"__init__", "plugin", "cli", "standin"}  # the top level: nothing imports them
LOOPS_ALLOWED = {"model"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The modules of ours that ``name`` imports, anywhere in its code."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    yield sub
                elif target in known:
                    yield target


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {
        name: {t for t in _imports(name, path, known) if t != name}
        for name, path in modules.items()
    }


def _layer(module: str) -> tuple[int, str]:
    """(rank, folder): the top level ranks above every folder."""
    parts = module.split(".")[1:]
    if not parts or (len(parts) == 1 and parts[0] in ENTRY_POINTS):
        return len(LAYERS), "top level"
    if parts[0] not in LAYERS:
        raise AssertionError(f"{module}: in no layer; add its folder to LAYERS or move it")
    return LAYERS.index(parts[0]), parts[0]


def test_the_top_level_holds_only_entry_points() -> None:
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top <= ENTRY_POINTS, sorted(top - ENTRY_POINTS)
    assert len(top - {"__init__"}) <= 6


def test_every_import_points_down_or_within_its_layer() -> None:
    upward = [
        f"{importer} -> {target} ({_layer(importer)[1]} imports {_layer(target)[1]})"
        for importer, targets in _graph().items()
        for target in targets
        if _layer(target)[0] > _layer(importer)[0]
    ]
    assert not upward, "\n".join(sorted(upward))


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_circle_outside_the_model() -> None:
    circles = [c for c in _circles(_graph()) if not all(_layer(m)[1] in LOOPS_ALLOWED for m in c)]
    assert not circles, "\n".join(" <-> ".join(c) for c in circles)


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_circle_finder_finds_circles(
    graph: dict[str, set[str]], expected: list[list[str]]
) -> None:
    assert _circles(graph) == expected
