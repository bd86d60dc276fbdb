"""Property tests: for generated stacks whose secrets collide with names, paths and
code, every identifier survives in every output channel, every secret that stands as a
secret (after its name, as a URL's password, after a secret flag) is masked, and every
structured output parses."""

from __future__ import annotations

import json
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import yaml
from _pytest._code.code import (
    ReprEntry,
    ReprExceptionInfo,
    ReprFileLocation,
    ReprFuncArgs,
    ReprLocals,
    ReprTraceback,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_pyairtable.frontends.cli.commands import render_tiers
from pytest_pyairtable.frontends.pytest.masking import mask_longrepr
from pytest_pyairtable.model.render import dump, render_config
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.support.redact import MASK

NAME = st.text(alphabet="abcdefgh", min_size=3, max_size=10)
STRONG = st.text(alphabet="abcdefghXYZ0123456789-", min_size=10, max_size=18).filter(
    lambda s: any(c.isdigit() for c in s) and not s.startswith("-")
)


@st.composite
def stacks(draw: Any) -> dict[str, Any]:
    project = draw(NAME)
    services = draw(st.lists(NAME, min_size=1, max_size=4, unique=True))
    user, database = draw(NAME), draw(NAME)
    names = [project, *services, user, database]
    # a secret equal to a name, part of one, or a value of its own
    collide = st.sampled_from(names).flatmap(
        lambda n: st.sampled_from([n, n[: max(3, len(n) - 1)], n[1:] if len(n) > 3 else n])
    )
    secrets = draw(st.lists(st.one_of(collide, STRONG), min_size=len(services),
                            max_size=len(services)))  # fmt: skip
    return {"project": project, "services": services, "user": user, "database": database,
            "secrets": secrets}  # fmt: skip


def write(directory: Path, spec: dict[str, Any]) -> Path:
    lines = [f"name: {spec['project']}", "services:"]
    for n, (name, secret) in enumerate(zip(spec["services"], spec["secrets"], strict=True)):
        lines += (
            textwrap.dedent(f"""\
          {name}:
            image: registry.example/{name}:{n}
            command: ["serve", "--password", "{secret}", "--name", "{name}"]
            environment:
              APP_USER: {spec["user"]}
              APP_DB: {spec["database"]}
              APP_PASSWORD: "{secret}"
              DATABASE_URL: postgresql://{spec["user"]}:{secret}@{name}:5432/{spec["database"]}
        """)
            .rstrip()
            .replace("\n", "\n  ")
            .join(["  ", ""])
            .splitlines()
        )
    path = directory / "docker-compose.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=stacks())
def test_names_survive_and_secrets_in_their_places_are_masked(spec: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix=f"{spec['secrets'][0]}-") as tmp:
        compose = write(Path(tmp), spec)
        stack = load_stack(compose, environ={})
        redact = stack.redactor()
        names = [stack.name, *stack.services, spec["user"], spec["database"], str(compose)]
        names += [svc.image for svc in stack.services.values()]
        # free text: the graph, the header, a warning's field path, a repr
        edges = {n: [d.name for d in svc.depends_on] for n, svc in stack.services.items()}
        text = "\n".join([*render_tiers(edges), f"pyairtable: {compose} ({len(edges)} services)",
                          *(f"services.{n}.environment" for n in stack.services)])  # fmt: skip
        shown = redact(text)
        for name in names:
            assert name in shown or name not in text, (name, shown)
        # structured: parses, keeps every name; secrets where they stand are masked
        doc = render_config(stack)
        for fmt, parse in (("json", json.loads), ("yaml", yaml.safe_load)):
            printed = parse(dump(doc, fmt))
            assert printed["name"] == stack.name
            assert set(printed["services"]) == set(stack.services)
            for name in spec["services"]:
                body = printed["services"][name]
                assert body["image"] == stack.services[name].image
                assert body["environment"]["APP_PASSWORD"] == MASK
                assert body["environment"]["APP_USER"] == spec["user"]
                assert body["environment"]["DATABASE_URL"] == (
                    f"postgresql://{spec['user']}:***@{name}:5432/{spec['database']}"
                )
                assert body["command"] == ["serve", "--password", MASK, "--name", name]
        # secret contexts in free text, whatever the value
        for name, secret in zip(spec["services"], spec["secrets"], strict=True):
            assert redact(f"APP_PASSWORD={secret} next") == "APP_PASSWORD=*** next"
            assert redact(f"serve --password {secret} --name x") == "serve --password *** --name x"
            assert redact(f"postgresql://u:{secret}@{name}/db") == f"postgresql://u:***@{name}/db"
            if secret not in redact.weak:  # a value of its own: masked wherever it appears
                assert secret not in redact(f"log: connected with {secret}.")


@settings(max_examples=60, deadline=None)
@given(code=st.lists(NAME, min_size=1, max_size=3), secret=STRONG)
def test_code_is_never_rewritten(code: list[str], secret: str) -> None:
    """A traceback whose code uses names equal to secrets: the source lines stay, the
    values (failure lines, locals, arguments) are masked, except where a value is a
    word of that code."""
    from pytest_pyairtable.support.redact import Redactor

    redact = Redactor([*code, secret])
    source = [
        f"    def test_{code[0]}():",
        f">       assert {code[0]}(password=password, x={secret!r}[1:])",
    ]
    failure = [
        f"E       AssertionError: assert {secret!r} == 'x'",
        f"E        +  where False = {code[0]}('{secret}')",
    ]
    entry = ReprEntry(
        lines=[*source, *failure],
        reprfuncargs=ReprFuncArgs([("password", repr(secret))]),
        reprlocals=ReprLocals([f"password = {secret!r}", f"other    = 'a {secret} b'"]),
        reprfileloc=ReprFileLocation(f"test_{code[0]}.py", 1, f"AssertionError: {secret}"),
        style="long",
    )
    crash = ReprFileLocation("x.py", 1, f"AssertionError: {secret}")
    mask_longrepr(ReprExceptionInfo(ReprTraceback([entry], None, "long"), crash), redact)
    assert secret not in crash.message
    assert entry.lines[:2] == source
    assert entry.reprlocals is not None and entry.reprfuncargs is not None
    assert entry.reprlocals.lines == ["password = '***'", "other    = 'a *** b'"]
    assert entry.reprfuncargs.args == [("password", "'***'")]
    assert entry.reprfileloc is not None and secret not in entry.reprfileloc.message
    assert secret not in "\n".join(entry.lines[2:])
    assert f"where False = {code[0]}(" in entry.lines[3]
