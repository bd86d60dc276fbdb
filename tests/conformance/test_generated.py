"""Generated compose projects, through our loader and through `docker compose config`.

Hypothesis writes small projects mixing the forms where readers of compose files go
wrong: interpolation (set, empty and unset variables, defaults, required, ``$$``), YAML
scalars of the 1.1/1.2 divide, anchors and merge keys, short and long ports, durations,
``depends_on`` forms, ``extends`` chains (in the file and from another file), commands
with shell operators. Both sides must agree field by field, or both refuse.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from compose_reference import (
    check_typed,
    find_reference,
    load_ours,
    needs_reference,
    our_services,
    reference_services,
    run_reference,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

REFERENCE = find_reference()
pytestmark = needs_reference()

VARIABLES = {"V_SET": "value", "V_EMPTY": "", "V_PORT": "8080", "V_TIME": "5s", "V_NUM": "4"}
NAMES = [*VARIABLES, "V_UNSET"]

# Plain scalars across the YAML 1.1 / 1.2 divide, written unquoted.
PLAIN = ["yes", "no", "on", "Off", "true", "False", "null", "~", "1.0", "1e3", "0x1F", "010",
         "0o17", "1_000", ".5", "+12", "-0", "2222:22", "1.10", "12345678901234567890", "08",
         "word", "two words", "a#b", ".inf", "1e6"]  # fmt: skip


def quoted(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


@st.composite
def template(draw: st.DrawFn) -> str:
    """A string with interpolation in it."""
    name = draw(st.sampled_from(NAMES))
    forms = ["${N}", "$N", "${N:-d}", "${N-d}", "${N:+a}", "${N+a}", "$${N}", "x-${N}-y",
             "${N:-${V_SET}}", "5$", "${N:-a}b}"]  # fmt: skip
    if draw(st.integers(0, 24)) == 0:  # now and then a required one, which may be missing
        forms = ["${N:?msg}", "${N?}"]
    return draw(st.sampled_from(forms)).replace("N", name)


def scalar(draw: st.DrawFn) -> str:
    """A YAML scalar, as written in the file."""
    kind = draw(st.sampled_from(["plain", "template", "quoted"]))
    if kind == "plain":
        return draw(st.sampled_from(PLAIN))
    if kind == "template":
        return quoted(draw(template()))
    return quoted(draw(st.sampled_from(PLAIN)))


@st.composite
def port(draw: st.DrawFn) -> str:
    rare = draw(st.integers(0, 15)) == 0  # mostly what compose accepts, now and then not
    if draw(st.booleans()):
        container, host = draw(
            st.sampled_from(
                [("80", "8080"), ("8080", ""), ("80", "8000-8010"), ("8000-8001", "9000-9001"),
                 ("${V_PORT}", "${V_PORT}"), ("80", "")]
                if not rare
                else [("65536", ""), ("80-82", "8000-8001"), ("81-80", ""), ("x", "80")]
            )
        )  # fmt: skip
        spec = f"{host}:{container}" if host else container
        if draw(st.integers(0, 3)) == 0 and (host or rare):
            ips = ["300.1.1.1", "[::1"] if rare else ["127.0.0.1", "[::1]", "::1", ""]
            spec = f"{draw(st.sampled_from(ips))}:{spec}"
        if draw(st.integers(0, 3)) == 0:
            spec += draw(st.sampled_from(["/bad"] if rare else ["/tcp", "/UDP", "/sctp"]))
        if spec.count(":") <= 1 and spec.replace(":", "").isdigit() and draw(st.booleans()):
            return spec  # unquoted: a number, or 8080:80 (base 60 for a YAML 1.1 reader)
        return quoted(spec)
    target = draw(st.sampled_from(["80", '"81"', '"${V_PORT}"']))
    fields = [f"target: {target}"]
    if draw(st.booleans()):
        published = draw(st.sampled_from(["8080", quoted("8080"), quoted("9000-9001")]))
        fields.append(f"published: {published}")
    if draw(st.booleans()):
        ip = draw(st.sampled_from(["nope"] if rare else ["127.0.0.1", quoted("::1")]))
        fields.append(f"host_ip: {ip}")
    return "{" + ", ".join(fields) + "}"


@st.composite
def duration(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 15)) == 0:  # what compose refuses: no unit, not a string
        return draw(st.sampled_from(["90", "1.5", quoted("90"), quoted("1x"), quoted("5.")]))
    if draw(st.integers(0, 15)) == 0:
        return quoted("${V_TIME}")
    parts = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["0", "1", "10", "1.5", ".5", "5."]),
                st.sampled_from(["ns", "us", "µs", "ms", "s", "m", "h", "d", "w"]),
            ),
            min_size=1,
            max_size=2,
        )
    )
    sign = draw(st.sampled_from(["", "", "", "+", "-"]))
    return quoted(sign + "".join(n + u for n, u in parts))


@st.composite
def command(draw: st.DrawFn) -> str:
    words = draw(
        st.lists(
            st.sampled_from(
                [
                    "echo",
                    "a",
                    "&&",
                    ";",
                    "|",
                    '"x y"',
                    "'z w'",
                    "\\$HOME",
                    "2>&1",
                    "$${V_SET}",
                    "${V_SET}",
                    "b\\ c",
                    '""',
                    "#c",
                ]
            ),
            min_size=1,
            max_size=5,
        )
    )
    text = " ".join(words)
    if draw(st.booleans()):
        return quoted(text)
    return "[" + ", ".join(quoted(w) for w in words) + "]"


@st.composite
def env_file(draw: st.DrawFn) -> str:
    lines = st.sampled_from(
        ["A=1", "V_SET", "V_UNSET", "B=${V_SET}-${V_UNSET:-d}", 'Q="two\nlines"', "S='lit ${V_SET}'",
         "export E=x", "C: colon", "I=a #comment", "H=a#b", "#comment", "", 'M="multi', 'line"',
         "D=${A}", "X=\\$y"]
    )  # fmt: skip
    return "\n".join(draw(st.lists(lines, max_size=6))) + "\n"


@st.composite
def override(draw: st.DrawFn, names: list[str]) -> str:
    """A compose.override.yaml changing one service: compose reads it automatically."""
    name = draw(st.sampled_from(names))
    lines = ["services:", f"  {name}:"]
    if draw(st.booleans()):
        lines.append(f"    environment: {{OVER: {scalar(draw)}, NEW: {scalar(draw)}}}")
    if draw(st.booleans()):
        lines.append(f"    ports: [{draw(port())}]")
    if draw(st.booleans()):
        lines.append(f"    command: {draw(command())}")
    if draw(st.booleans()):
        lines.append(f"    healthcheck: {{retries: 2, timeout: {draw(duration())}}}")
    if draw(st.booleans()):
        lines.append("    env_file: [{path: extra.env, required: false}]")
    if len(lines) == 2:
        lines.append("    stop_signal: SIGINT")
    return "\n".join(lines) + "\n"


@st.composite
def project(draw: st.DrawFn) -> dict[str, str]:
    """The files of a project: compose.yaml, base.yml, maybe an override and env files."""
    count = draw(st.integers(1, 4))
    names = [f"s{i}" for i in range(count)]
    image = draw(st.sampled_from(["img", "img:${V_SET}", "img:${V_UNSET:-latest}", "1.0"]))
    lines = ["x-common: &common", f"  image: {image}", "  environment:"]
    lines += [f"    SHARED: {scalar(draw)}", f"    OVER: {scalar(draw)}"]
    lines += ["services:"]
    for i, name in enumerate(names):
        lines.append(f"  {name}:")
        if draw(st.booleans()):
            lines.append("    <<: *common")
        else:
            lines.append(f"    image: {quoted('img-' + draw(template()))}")
        if i and draw(st.integers(0, 3)) == 0:
            lines.append(f"    extends: {names[i - 1]}")
        elif draw(st.integers(0, 4)) == 0:
            lines.append("    extends: {file: base.yml, service: base}")
        env = [f"      K{j}: {scalar(draw)}" for j in range(draw(st.integers(0, 3)))]
        if env and draw(st.booleans()):
            lines += ["    environment:", *env]
        elif draw(st.booleans()):
            items = [quoted(f"L{j}={draw(template())}") for j in range(2)] + ["V_SET", "V_UNSET"]
            lines.append(f"    environment: [{', '.join(items)}]")
        ports = draw(st.lists(port(), max_size=3))
        if ports:
            lines.append(f"    ports: [{', '.join(ports)}]")
        if draw(st.booleans()):
            retries = draw(st.sampled_from(["3", '"4"', '"${V_NUM}"', "2.0", "0", "5"]))
            test = draw(st.sampled_from(["CMD", "CMD-SHELL", "NONE", "string"]))
            test = quoted(draw(template())) if test == "string" else f'["{test}", "true"]'
            lines.append(
                f"    healthcheck: {{test: {test}, interval: {draw(duration())}, "
                f"retries: {retries}}}"
            )
        if draw(st.booleans()):
            lines.append(f"    stop_grace_period: {draw(duration())}")
        if draw(st.integers(0, 3)) == 0:
            lines.append("    env_file: app.env")
        if draw(st.booleans()):
            lines.append(f"    command: {draw(command())}")
        # mostly on earlier services; a later one may close a cycle, which both refuse
        pool = names[: i + 1] if draw(st.integers(0, 15)) == 0 else names[:i]
        deps = draw(st.lists(st.sampled_from(pool), max_size=2, unique=True)) if pool else []
        if deps and draw(st.booleans()):
            lines.append(f"    depends_on: [{', '.join(deps)}]")
        elif deps:
            condition = draw(
                st.sampled_from(
                    ["service_started", "service_healthy", "service_completed_successfully"] * 3
                    + ["nope"]
                )
            )
            required = draw(st.sampled_from(["true", "false"]))
            entries = [f"{d}: {{condition: {condition}, required: {required}}}" for d in deps]
            lines.append(f"    depends_on: {{{', '.join(entries)}}}")
    base = [
        "services:",
        "  base:",
        f"    image: {quoted('base-' + draw(template()))}",
        f"    environment: {{FROM_BASE: {scalar(draw)}}}",
        f"    ports: [{draw(port())}]",
    ]
    files = {
        "compose.yaml": "\n".join(lines) + "\n",
        "base.yml": "\n".join(base) + "\n",
        "app.env": draw(env_file()),
        "extra.env": draw(env_file()),
    }
    if draw(st.booleans()):
        files["compose.override.yaml"] = draw(override(names))
    return files


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(project())
def test_generated_projects_agree_with_compose(files: dict[str, str]) -> None:
    assert REFERENCE is not None
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name, text in files.items():
            (directory / name).write_text(text)
        theirs = run_reference(REFERENCE, directory, VARIABLES)
        ours = load_ours(directory, VARIABLES)
        explain = "".join(f"\n--- {name}\n{text}" for name, text in files.items())
        # compose loads .inf in an x- block, but its JSON printer cannot print it
        assume(not (isinstance(theirs, str) and "json: unsupported value" in theirs))
        if isinstance(theirs, str):
            assert isinstance(ours, str), f"compose refused ({theirs}), we accepted{explain}"
            return
        assert not isinstance(ours, str), f"we refused ({ours}), compose accepted{explain}"
        expected: dict[str, Any] = reference_services(theirs)
        assert our_services(ours) == expected, explain
        assert ours.name == theirs["name"]
        for name, fields in expected.items():
            check_typed(ours.services[name], fields)
