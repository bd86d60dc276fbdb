"""Fuzzing the loader: random compose documents, mutated real ones, random .env files.

Each input must end in success or in our own error (a ``PyAirtableError`` with a
message), never another exception, within bounds: the test runs under an address-space
limit (a MemoryError would fail it instead of the machine), and each input's CPU time is
checked against the 15 s the issue allows (a hang detector, not a speed target). What
loads is taken further, as a run would: fixture names, endpoints, the ports the local
backend checks, `pyairtable config`'s rendering. CI runs 250 inputs per strategy;
``PYAIRTABLE_FUZZ_EXAMPLES=20000`` runs more by hand.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_pyairtable.backends.local import service_ports
from pytest_pyairtable.engine.handle import endpoint
from pytest_pyairtable.model.render import dump, render_config
from pytest_pyairtable.model.schema import SERVICE_KEYS
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.support.errors import PyAirtableError

ROOT = Path(__file__).resolve().parent.parent
MEMORY_BUDGET = 1 << 30  # bytes of address space an input may add
CPU_BOUND = 15.0  # seconds of CPU per input: the bound

FUZZ = settings(
    max_examples=int(os.environ.get("PYAIRTABLE_FUZZ_EXAMPLES", "250")),  # more, by hand
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the files are rewritten for each input
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def bounded_memory() -> Iterator[None]:
    """The address-space limit of this process, raised by ``MEMORY_BUDGET`` over what it
    uses now, for the test; restored after."""
    size = _vm_size()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + MEMORY_BUDGET
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


def check_input(folder: Path, compose: bytes, env: bytes | None = None) -> None:
    """Load ``compose`` (and ``env`` as .env); our error or success, within bounds."""
    (folder / "docker-compose.yml").write_bytes(compose)
    env_path = folder / ".env"
    if env is None:
        env_path.unlink(missing_ok=True)
    else:
        env_path.write_bytes(env)
    began = time.process_time()
    try:
        stack = load_stack(folder / "docker-compose.yml", environ={"SET": "value", "PORT": "80"})
        for svc in stack.services.values():
            assert svc.fixture_name.isidentifier()
            endpoint(svc)
            service_ports(svc)
        dump(render_config(stack), "json")
        dump(render_config(stack), "yaml")
    except PyAirtableError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
    except MemoryError:
        raise AssertionError("an input exhausted the memory bound") from None
    spent = time.process_time() - began
    assert spent < CPU_BOUND, f"one input took {spent:.1f}s of CPU"


# -- random documents ------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "${SET}",
            "${UNSET:?need it}",
            "$${X}",
            "8080:80",
            "1-65535",
            "10s",
            "CMD",
            "service_healthy",
            "127.0.0.1:5432",
            "http://u:p@h:1/x",
            "postgres",
            "redis",
            "\0",
            "..",
            "-",
            "a-b",
            "a_b",
        ]
    ),
)
KEYS = st.one_of(
    st.sampled_from(sorted(SERVICE_KEYS)),
    st.sampled_from(
        [
            "x-pyairtable",
            "local",
            "probe",
            "command",
            "env",
            "cwd",
            "tcp",
            "http",
            "json",
            "status",
            "url",
            "job",
            "target",
            "published",
            "test",
            "condition",
            "interval",
            "retries",
            "<<",
        ]
    ),
    st.text(max_size=10),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)
SERVICE_NAMES = st.one_of(
    st.sampled_from(["a", "b", "a-b", "a_b", "stack", "..", "db"]), st.text(max_size=12)
)
DOCUMENTS = st.fixed_dictionaries(
    {
        "services": st.dictionaries(
            SERVICE_NAMES, st.dictionaries(KEYS, VALUES, max_size=6), max_size=4
        )
    },
    optional={"name": VALUES, "include": VALUES, "volumes": VALUES, "x-top": VALUES},
)


# Services that pass the shape checks more often, so the fields' own readers are reached.
TEXT = st.text(max_size=12) | st.sampled_from(["${SET}", "${PORT}", "", " ", "\0", "é", "a b"])
NUMBER = st.integers(-1, 70000) | st.floats(allow_nan=True, allow_infinity=True)
DURATION = st.sampled_from(["1s", "0", "-5s", "1.5m", "1h2m3s", "99999999h", "5", "1d", "", "1 s"])
PORT = st.one_of(
    st.sampled_from(
        [
            "80",
            "8080:80",
            "127.0.0.1::80",
            "[::1]:80:80",
            "1-3:1-3",
            "80/udp",
            "0-65535",
            "8000-8001:80",
            ":80",
            "80:",
            "::1:80:80",
            "${PORT}:80",
        ]
    ),
    NUMBER,
    st.fixed_dictionaries(
        {},
        optional={
            "target": NUMBER | TEXT,
            "published": NUMBER | TEXT,
            "host_ip": TEXT,
            "protocol": TEXT,
        },
    ),
)
PROBE_KIND = st.sampled_from(["http", "postgres", "redis", "tcp", "command", "log"])
SERVICE = st.fixed_dictionaries(
    {"image": st.sampled_from(["postgres:16", "redis:7", "x", "registry/postgres@sha256:0"])},
    optional={
        "command": TEXT | st.lists(TEXT, max_size=4),
        "environment": st.dictionaries(
            st.sampled_from(
                ["POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_DB", "REDIS_PASSWORD", "A"]
            ),
            TEXT | NUMBER | st.none(),
            max_size=3,
        )
        | st.lists(TEXT, max_size=3),
        "ports": st.lists(PORT, max_size=3),
        "healthcheck": st.fixed_dictionaries(
            {},
            optional={
                "test": st.lists(
                    st.sampled_from(
                        [
                            "CMD",
                            "CMD-SHELL",
                            "NONE",
                            "curl",
                            "-f",
                            "http://localhost:80/",
                            "http://[::1",
                            "true",
                        ]
                    ),
                    max_size=4,
                )
                | TEXT,
                "interval": DURATION,
                "timeout": DURATION,
                "start_period": DURATION,
                "retries": NUMBER,
                "disable": st.booleans(),
            },
        ),
        "depends_on": st.lists(st.sampled_from(["a", "b", "c"]), max_size=2)
        | st.dictionaries(
            st.sampled_from(["a", "b"]),
            st.fixed_dictionaries(
                {
                    "condition": st.sampled_from(
                        [
                            "service_started",
                            "service_healthy",
                            "service_completed_successfully",
                            "x",
                        ]
                    )
                }
            ),
        ),
        "stop_grace_period": DURATION,
        "stop_signal": st.sampled_from(["SIGTERM", "INT", "SIGFOO", ""]),
        "x-pyairtable": st.fixed_dictionaries(
            {},
            optional={
                "local": st.fixed_dictionaries(
                    {},
                    optional={
                        "command": TEXT | st.lists(TEXT, max_size=3),
                        "cwd": TEXT,
                        "env": st.dictionaries(TEXT, TEXT | NUMBER, max_size=2),
                    },
                ),
                "probe": st.dictionaries(
                    PROBE_KIND, TEXT | st.lists(TEXT, max_size=2), min_size=1, max_size=2
                ),
                "url": TEXT | st.sampled_from(["http://h:1", "tcp://h", "redis://:p@h:99999"]),
                "job": st.booleans(),
            },
        ),
    },
)


def as_yaml(document: Any) -> bytes:
    return yaml.safe_dump(document, allow_unicode=True).encode("utf-8", "surrogatepass")


@FUZZ
@given(document=DOCUMENTS)
def test_random_documents(document: dict[str, Any], tmp_path: Path, bounded_memory: None) -> None:
    check_input(tmp_path, as_yaml(document))


@FUZZ
@given(services=st.dictionaries(st.sampled_from(["a", "b", "c"]), SERVICE, min_size=1))
def test_plausible_services(services: dict[str, Any], tmp_path: Path, bounded_memory: None) -> None:
    check_input(tmp_path, as_yaml({"services": services}))


# -- mutated real documents -----------------------------------------------------------

SEEDS = [
    (ROOT / "docker-compose.yml").read_bytes(),
    b"x-base: &base {image: x, environment: {A: '${SET}'}}\nservices:\n  a: {<<: *base, ports: ['8080:80', {target: 81, published: '9000-9001'}]}\n"
    b"  b:\n    <<: *base\n    depends_on: {a: {condition: service_healthy}}\n    healthcheck: {test: [CMD, curl, -f, 'http://localhost:81/'], interval: 1s}\n"
    b"    x-pyairtable: {local: {command: [run, --token, t], cwd: ., env: {K: v}}, probe: {tcp: '127.0.0.1:81'}}\n",
]
SPECIAL = b"&*!|>{}[]:-?#%@`'\"\\\n\t \0${}<<.~"


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "repeat", "byte"]))
        if kind == "insert":
            data[at:at] = draw(
                st.binary(min_size=1, max_size=6) | st.sampled_from([bytes([c]) for c in SPECIAL])
            )
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        elif kind == "repeat":
            chunk = bytes(data[at : at + draw(st.integers(1, 30))])
            data[at:at] = chunk * draw(st.integers(1, 50))
        elif at < len(data):
            data[at] = draw(st.sampled_from(list(SPECIAL)))
    return bytes(data)


@FUZZ
@given(compose=mutated())
def test_mutated_documents(compose: bytes, tmp_path: Path, bounded_memory: None) -> None:
    check_input(tmp_path, compose, env=(ROOT / ".env.example").read_bytes())


# -- random .env files ----------------------------------------------------------------

ENV_LINES = st.lists(
    st.one_of(
        st.builds(
            lambda k, v: f"{k}={v}",
            st.sampled_from(["SET", "A", "B_PASSWORD", "export C"]),
            st.text(max_size=20),
        ),
        st.sampled_from(
            [
                'A="multi\nline"',
                "B='${A}'",
                'C="\\0777"',
                "D=${A:-${B:-x}}",
                "=x",
                "#c",
                "E",
                "F: g",
                'G="unclosed',
            ]
        ),
        st.text(max_size=20),
    ),
    max_size=8,
)


@FUZZ
@given(lines=ENV_LINES, raw=st.just(b"") | st.binary(max_size=40))
def test_random_env_files(
    lines: list[str], raw: bytes, tmp_path: Path, bounded_memory: None
) -> None:
    compose = b"services:\n  a: {image: 'x:${A:-1}', environment: [SET, B_PASSWORD], env_file: [{path: .env, required: false}]}\n"
    check_input(tmp_path, compose, env="\n".join(lines).encode("utf-8", "surrogatepass") + raw)


# Shapes of the adversarial round: patterns that backtrack, identifiers that need quoting.
_ATOMS = st.sampled_from(["a", "b", r"\w", r"\s", ".", "[ab]", "(?:a|aa)", "a?", "x"])
_QUANTIFIERS = st.sampled_from(["", "+", "*", "?", "{2}", "{1,}", "+?"])


@st.composite
def _patterns(draw: st.DrawFn, depth: int = 3) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        if depth and draw(st.booleans()):
            inner = draw(_patterns(depth - 1))
            parts.append(f"({inner}){draw(_QUANTIFIERS)}")
        else:
            parts.append(draw(_ATOMS) + draw(_QUANTIFIERS))
    return "".join(parts)


@FUZZ
@given(
    pattern=_patterns(),
    line=st.text(alphabet="ab \n", max_size=60),
)
def test_log_patterns_load_or_are_refused_and_every_search_ends(
    pattern: str, line: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A random pattern is refused at load with our error or searched within its limit:
    the search returns, or ends the wait as too slow; it never hangs."""
    import re

    from pytest_pyairtable.model.probespec import parse_probe
    from pytest_pyairtable.probes.checks import ProbeContext, ProbeFailed, ProbeUnusable, make_probe

    try:
        re.compile(pattern)
    except re.error:
        return  # not the shape under test (the loader's message for it is tested elsewhere)
    try:
        spec = parse_probe({"log": pattern}, "service 'a'")
    except PyAirtableError as exc:
        assert "Fix:" in str(exc)
        return
    log = tmp_path_factory.mktemp("log") / "a.log"
    log.write_text(line + "a" * 30 + "b\n")
    start = time.process_time()
    with contextlib.suppress(ProbeFailed, ProbeUnusable):
        make_probe(spec, ProbeContext(log_path=log)).check()
    assert time.process_time() - start < CPU_BOUND


@FUZZ
@given(name=st.text(min_size=1, max_size=40).filter(lambda s: "\0" not in s))
def test_identifiers_round_trip_through_quoting(name: str) -> None:
    from pytest_pyairtable.model.imageenv import quote_identifier

    quoted = quote_identifier(name)
    assert quoted[0] == quoted[-1] == '"'
    body = quoted[1:-1]
    assert body.replace('""', "").count('"') == 0  # every inner quote doubled
    assert body.replace('""', '"') == name
