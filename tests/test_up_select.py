"""`pytest --pyairtable-up` as `pyairtable up`: services selected by name, every
prerequisite checked before anything starts."""

from __future__ import annotations

import json

import pytest
from stackrun import cli, listening, standin_service

from conftest import Ports, Project

BROKEN = (  # one needs a tool this machine lacks, one has no way to run locally
    "  needs-a-tool:\n"
    "    image: example/tool\n"
    "    x-pyairtable: {local: {command: [no-such-tool-pyairtable, serve]}}\n"
    "  no-way-to-run:\n"
    "    image: example/closed-source\n"
)


def stack(project: Project, a: int, b: int, c: int, broken: bool = False) -> None:
    project.compose(
        "services:\n"
        + standin_service("db", a)
        + standin_service("api", b, extra="depends_on: [db]")
        + standin_service("web", c)
        + (BROKEN if broken else "")
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
