"""`pytest --pyairtable-up` as `pyairtable up`: services selected by name, every
prerequisite checked before anything starts."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from stackrun import cli, listening

from conftest import Project

Ports = Callable[[int], list[int]]
STANDIN = "python -m pytest_pyairtable.standin --startup-delay 0.05"


def stack(project: Project, a: int, b: int, c: int, broken: bool = False) -> None:
    extra = """
          needs-a-tool:
            image: example/tool
            x-pyairtable: {local: {command: [no-such-tool-pyairtable, serve]}}
          no-way-to-run:
            image: example/closed-source
    """
    project.compose(
        f"""
        services:
          db:
            image: example/db
            x-pyairtable:
              local: {{command: {STANDIN} --name db --port {a}}}
              probe: {{tcp: "127.0.0.1:{a}"}}
          api:
            image: example/api
            depends_on: [db]
            x-pyairtable:
              local: {{command: {STANDIN} --name api --port {b}}}
              probe: {{tcp: "127.0.0.1:{b}"}}
          web:
            image: example/web
            x-pyairtable:
              local: {{command: {STANDIN} --name web --port {c}}}
              probe: {{tcp: "127.0.0.1:{c}"}}
    """
        + (extra if broken else "")
    )


def test_up_with_service_names_starts_those_and_what_they_need(
    project: Project, free_ports: Ports
) -> None:
    a, b, c = free_ports(3)
    stack(project, a, b, c)
    result = project.run("--pyairtable-up=api", "--pyairtable-keep")
    assert result.ret == 0, result.stdout.str()
    try:
        status = cli("status", "--json", cwd=project.path)
        services = [row["service"] for row in json.loads(status.stdout)["services"]]
        assert sorted(services) == ["api", "db"]
        assert listening(a) and listening(b) and not listening(c)
    finally:
        assert cli("down", cwd=project.path).returncode == 0


def test_up_checks_every_prerequisite_before_starting_anything(
    project: Project, free_ports: Ports
) -> None:
    a, b, c = free_ports(3)
    stack(project, a, b, c, broken=True)
    result = project.run("--pyairtable-up")
    assert result.ret != 0
    out = result.stdout.str()
    assert "2 prerequisite(s) missing; nothing was started" in out
    assert "no-such-tool-pyairtable" in out and "no-way-to-run" in out
    assert "starting (tier" not in out and not listening(a)


def test_up_with_an_unknown_service_is_a_usage_error(project: Project, free_ports: Ports) -> None:
    a, b, c = free_ports(3)
    stack(project, a, b, c)
    result = project.run("--pyairtable-up=api,nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown service(s) nope*active services are: db, api, web*"])
