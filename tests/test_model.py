"""Pure logic: durations, interpolation, the graph. No processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_pyairtable.model import graph
from pytest_pyairtable.model.dotenv import read_env_file
from pytest_pyairtable.model.durations import format_duration, go_duration, parse_duration
from pytest_pyairtable.model.interpolate import Interpolator
from pytest_pyairtable.support.errors import ConfigError, DependencyCycleError, InterpolationError


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


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        ("0", "0s"),
        ("-5s", "-5s"),
        ("+5s", "5s"),
        (".5s", "500ms"),
        ("5.s", "5s"),
        ("1d", "24h0m0s"),
        ("1w2d3h", "219h0m0s"),
        ("1h1.5m", "1h1m30s"),
        ("1s500ms", "1.5s"),
        ("500ns", "500ns"),
        ("5µs", "5µs"),
        ("1.000000001s", "1.000000001s"),
        ("9223372036854775807ns", "2562047h47m16.854775807s"),
    ],
)
def test_compose_durations_parse_and_print_as_go(text: str, printed: str) -> None:
    assert format_duration(go_duration(text)) == printed


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("90", "missing unit"),
        ("00", "missing unit"),
        ("5.", "missing unit"),
        ("1e3s", 'unknown unit "e"'),
        ("5S", 'unknown unit "S"'),
        (" 5s", "invalid duration"),
        ("9223372036854775808ns", "invalid duration"),
        ("106752d", "invalid duration"),
        ("", "invalid duration"),
    ],
)
def test_durations_compose_refuses(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        go_duration(text)


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${UNSET-B:-C}", "B:-C"),  # the first operator after the name decides
        ("${UNSET:-x}y${UNSET:-z}", "xyz"),
        ("${UNSET:-a}b}", "ab}"),
        ("${UNSET:-{}", "{"),
        ("$1A", "$1A"),
        ("${SET:+${UNSET:-n}}", "n"),
        ("${SET:?boom}", "value"),
    ],
)
def test_interpolation_quirks_of_compose(text: str, expected: str) -> None:
    assert Interpolator(VARS).text(text, "x") == expected


def test_missing_required_variables_are_all_listed_once() -> None:
    interp = Interpolator(VARS)
    interp.walk(
        {
            "a": "${ONE:?needed for a}",
            "b": ["${TWO?}"],
            "c": "${EMPTY:?empty}",
            "d": "${EMPTY?}",
            "e": "${ONE:?needed for a}",
        }
    )
    with pytest.raises(InterpolationError) as info:
        interp.raise_missing()
    message = str(info.value)
    assert "3 problem(s)" in message
    assert "ONE (needed for a) in a, e" in message
    assert "TWO (is unset) in b[0]" in message
    assert "EMPTY (empty) in c" in message


def test_unset_variables_warn_once_each() -> None:
    interp = Interpolator(VARS)
    interp.walk({"a": "$U1-$U1", "b": "${U2}", "c": "${U3:-d}", "d": "${U1}"})
    assert interp.warnings() == [
        'variable "U1" is not set, so it is empty (in a, d)',
        'variable "U2" is not set, so it is empty (in b)',
    ]


def test_interpolation_converts_where_compose_converts() -> None:
    doc = {"services": {"a": {"healthcheck": {"retries": "${R}"}, "ports": [{"target": "80"}],
                              "init": "yes", "environment": {"N": "5"}}}}  # fmt: skip
    out = Interpolator({"R": "4"}).walk(doc)["services"]["a"]
    assert out == {"healthcheck": {"retries": 4}, "ports": [{"target": 80}], "init": True,
                   "environment": {"N": "5"}}  # fmt: skip
    interp = Interpolator({})
    interp.walk({"services": {"a": {"healthcheck": {"retries": "4.0"}}}})
    assert interp.problems == [
        "services.a.healthcheck.retries: cannot convert '4.0' to a whole number. "
        "Fix: correct it (or the variable it comes from)."
    ]


@pytest.mark.parametrize("bad", ["${", "${SET", "${-x}", "${SET%x}", "${1A}"])
def test_malformed_interpolation(bad: str) -> None:
    interp = Interpolator(VARS)
    interp.text(bad, "services.web.image")
    with pytest.raises(InterpolationError, match=r"services\.web\.image"):
        interp.raise_missing()


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_dollar_escaping_round_trips(text: str) -> None:
    assert Interpolator({}).text(text.replace("$", "$$"), "x") == text


def test_env_file_syntax(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# comment\n\nexport A=1\nB = two words # trailing comment\nC='lit ${A}'\n"
        'D="line\\nnext ${A}"\nE=${A}-${FROM_ENV}\nF=\nBARE\nML="one\ntwo"\nG: yaml\n'
        "H=a#b\nI=\"\\$x \\0101\"\nJ=${UNSET:-dflt}\nK='it\\'s'\n"
    )
    values = read_env_file(path, {"FROM_ENV": "env", "BARE": "from-env"}.get, {})
    assert values == {
        "A": "1",
        "B": "two words",
        "C": "lit ${A}",
        "D": "line\nnext 1",
        "E": "1-env",
        "F": "",
        "BARE": "from-env",
        "ML": "one\ntwo",
        "G": "yaml",
        "H": "a#b",
        "I": "$x A",
        "J": "dflt",
        "K": "it's",
    }


def test_env_file_raw_format_takes_lines_as_written(tmp_path: Path) -> None:
    path = tmp_path / "raw.env"
    path.write_text('A=${X} "q" \n  B=2\n#c\nC\nD=x=y\n')
    assert read_env_file(path, {"C": "c"}.get, {}, fmt="raw") == {
        "A": '${X} "q" ',
        "B": "2",
        "C": "c",
        "D": "x=y",
    }


@pytest.mark.parametrize(
    ("text", "line"), [("A=1\nnot a pair\n", 2), ('A="open\n\n', 1), ("A=1\nB%=2\n", 2)]
)
def test_env_file_bad_line_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / ".env"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"\.env:{line}: "):
        read_env_file(path, {}.get, {})


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
