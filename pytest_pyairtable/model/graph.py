"""The dependency DAG: cycle check, tiers (longest path from a root), closures, order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..support.errors import DependencyCycleError

Edges = Mapping[str, Sequence[str]]  # service -> the services it depends on


def _present(edges: Edges, name: str) -> list[str]:
    # Optional dependencies on absent services are not edges.
    return [d for d in edges.get(name, ()) if d in edges]


def check_acyclic(edges: Edges) -> None:
    """Raise DependencyCycleError naming the services of the first cycle found."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in _present(edges, node):
            if state.get(dep) == 1:
                raise DependencyCycleError(path[path.index(dep) :])
            if dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in edges:
        if node not in state:
            visit(node)


def tiers(edges: Edges) -> dict[str, int]:
    """Tier 1 has no dependencies; otherwise one more than the deepest dependency."""
    memo: dict[str, int] = {}

    def tier(node: str) -> int:
        if node not in memo:
            memo[node] = 1 + max((tier(d) for d in _present(edges, node)), default=0)
        return memo[node]

    return {node: tier(node) for node in edges}


def closure(edges: Edges, roots: Iterable[str]) -> set[str]:
    """The roots and everything they need, transitively."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(_present(edges, node))
    return seen


def dependents(edges: Edges) -> dict[str, set[str]]:
    """Reverse edges: service -> the services that depend on it."""
    result: dict[str, set[str]] = {n: set() for n in edges}
    for node in edges:
        for dep in _present(edges, node):
            result[dep].add(node)
    return result


def start_order(edges: Edges) -> list[str]:
    """A stable topological order: by tier, then by name."""
    tier_of = tiers(edges)
    return sorted(edges, key=lambda n: (tier_of[n], n))


def critical_path(edges: Edges, cost: Mapping[str, float]) -> tuple[float, list[str]]:
    """The longest chain by summed cost, and its services from root to leaf."""
    best: dict[str, tuple[float, list[str]]] = {}
    for node in start_order(edges):
        prev = max((best[d] for d in _present(edges, node)), default=(0.0, []), key=lambda b: b[0])
        best[node] = (prev[0] + cost.get(node, 0.0), [*prev[1], node])
    return max(best.values(), default=(0.0, []), key=lambda b: b[0])
