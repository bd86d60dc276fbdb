"""Pure logic: durations, interpolation, the graph. No processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_pyairtable.errors import ConfigError, DependencyCycleError, InterpolationError
from pytest_pyairtable.model import graph
from pytest_pyairtable.model.durations import parse_duration
from pytest_pyairtable.model.interpolate import Interpolator, parse_env_file


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10),
        ("1m30s", 90),
        ("250ms", 0.25),
        ("1h", 3600),
        ("1.5s", 1.5),
        ("500us", 0.0005),
        (5, 5),
        ("2m", 120),
        ("1h1m1s", 3661),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "10", "ten", "10 s", "s10", "1x", "-5s", -1, True])
def test_bad_durations_name_where(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"healthcheck\.interval"):
        parse_duration(bad, where="healthcheck.interval")


VARS = {"SET": "value", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$SET", "value"),
        ("${SET}", "value"),
        ("pre-${SET}-post", "pre-value-post"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${SET:-d}", "value"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("cost: 5$", "cost: 5$"),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-a ${UNSET2:-b}}", "a b"),
        ("$UNSET", ""),
    ],
)
def test_interpolation(text: str, expected: str) -> None:
    assert Interpolator(VARS).text(text, "x") == expected


def test_missing_required_variables_are_all_listed() -> None:
    interp = Interpolator(VARS)
    interp.walk(
        {"a": "${ONE:?needed for a}", "b": ["${TWO?}"], "c": "${EMPTY:?empty}", "d": "${EMPTY?}"}
    )
    with pytest.raises(InterpolationError) as info:
        interp.raise_missing()
    message = str(info.value)
    assert "3 required variable(s) missing" in message
    assert "ONE (needed for a) in a" in message
    assert "TWO (is unset) in b[0]" in message
    assert "EMPTY (empty) in c" in message


@pytest.mark.parametrize("bad", ["${", "${SET", "${-x}", "${SET%x}"])
def test_malformed_interpolation(bad: str) -> None:
    with pytest.raises(InterpolationError, match=r"services\.web\.image"):
        Interpolator(VARS).text(bad, "services.web.image")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_dollar_escaping_round_trips(text: str) -> None:
    assert Interpolator({}).text(text.replace("$", "$$"), "x") == text


def test_env_file_syntax(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# comment\n\nexport A=1\nB = two words # trailing comment\nC='lit ${A}'\n"
        'D="line\\nnext ${A}"\nE=${A}-${FROM_ENV}\nF=\n'
    )
    values = parse_env_file(path, {"FROM_ENV": "env"})
    assert values == {
        "A": "1",
        "B": "two words",
        "C": "lit ${A}",
        "D": "line\nnext 1",
        "E": "1-env",
        "F": "",
    }


def test_env_file_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\nnot a pair\n")
    with pytest.raises(ConfigError, match=r"\.env:2"):
        parse_env_file(path)


SEED = {
    "postgres": [],
    "redis": [],
    "airtable-gateway": ["redis"],
    "platform-services": ["postgres", "redis"],
    "mcp-server": ["airtable-gateway"],
    "llm-orchestrator": ["mcp-server", "redis"],
    "automation-services": ["mcp-server", "platform-services", "postgres"],
    "saga-orchestrator": ["llm-orchestrator", "automation-services", "postgres", "redis"],
    "api-gateway": ["saga-orchestrator", "airtable-gateway"],
    "frontend": ["api-gateway"],
}


def test_tiers_match_the_seed() -> None:
    assert graph.tiers(SEED) == {
        "postgres": 1,
        "redis": 1,
        "airtable-gateway": 2,
        "platform-services": 2,
        "mcp-server": 3,
        "llm-orchestrator": 4,
        "automation-services": 4,
        "saga-orchestrator": 5,
        "api-gateway": 6,
        "frontend": 7,
    }


def test_closure_is_exact() -> None:
    assert graph.closure(SEED, ["platform-services"]) == {"platform-services", "postgres", "redis"}
    assert graph.closure(SEED, ["frontend"]) == set(SEED)


def test_cycle_is_printed() -> None:
    with pytest.raises(DependencyCycleError, match="a -> b -> c -> a"):
        graph.check_acyclic({"a": ["b"], "b": ["c"], "c": ["a"], "d": []})


def test_critical_path() -> None:
    cost = dict.fromkeys(SEED, 0.5)
    total, path = graph.critical_path(SEED, cost)
    assert total == pytest.approx(3.5)
    assert path[-1] == "frontend" and len(path) == 7


@given(st.lists(st.lists(st.integers(0, 9), max_size=4), min_size=1, max_size=10))
def test_tier_is_one_more_than_deepest_dependency(raw: list[list[int]]) -> None:
    # Only edges to lower indexes, so the graph is a DAG.
    edges = {f"s{i}": [f"s{d}" for d in deps if d < i] for i, deps in enumerate(raw)}
    tiers = graph.tiers(edges)
    order = graph.start_order(edges)
    for name, deps in edges.items():
        assert tiers[name] == 1 + max((tiers[d] for d in deps), default=0)
        assert all(order.index(d) < order.index(name) for d in deps)
