"""The timeline files and the summary after a run with fault tests: the boot stays the
boot (restarts are drawn apart), one track per service, and where the tests ran."""

from __future__ import annotations

import json
import re

from stackrun import standin_service

from conftest import Ports, Project


def test_after_fault_tests_the_timeline_and_summary_are_the_boots(
    project: Project, free_ports: Ports
) -> None:
    a, b, c = free_ports(3)
    project.compose(
        "services:\n"
        + standin_service("db", a, delay=0.2)
        + standin_service(
            "api", b, delay=0.2, extra="depends_on: {db: {condition: service_healthy}}"
        )
        + standin_service("web", c, delay=0.2)
    )
    project.tests("""
        def test_first(pyairtable_api, pyairtable_web):
            pass

        def test_db_restarts(pyairtable_api, pyairtable_faults):
            pyairtable_faults.restart("db")

        def test_db_killed(pyairtable_api, pyairtable_faults):
            pyairtable_faults.kill("db")
    """)
    result = project.run("--pyairtable-timeline", "trace.json")
    result.assert_outcomes(passed=3)
    summary = re.search(
        r"boot (\d+\.\d+)s; critical path (\d+\.\d+)s: db -> api", result.stdout.str()
    )
    assert summary, result.stdout.str()
    assert float(summary.group(2)) <= float(summary.group(1)) + 0.01

    events = json.loads((project.path / "trace.json").read_text())["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert sorted(names.values()) == ["api (tier 2)", "db (tier 1)", "tests", "web (tier 1)"]
    by_name = {e["name"]: e for e in events if e["ph"] == "X"}
    tests = by_name["tests ran"]
    for service in ("db", "api", "web"):
        boot = by_name[f"{service} starting"]
        assert names[boot["tid"]].startswith(service)
        ready = boot["ts"] + boot["dur"]
        assert ready <= tests["ts"] + tests["dur"]  # the boot's, not a heal's, end
    restarts = [e for e in events if e["name"] == "db restarting"]
    assert len(restarts) == 2  # the restart, and the heal after the kill
    assert all(e["tid"] == by_name["db starting"]["tid"] for e in restarts)
    assert all(e["ts"] >= tests["ts"] for e in restarts)


def test_the_html_chart_has_a_time_axis_and_marks_the_tests(
    project: Project, free_ports: Ports
) -> None:
    (a,) = free_ports(1)
    project.compose("services:\n" + standin_service("api", a))
    project.tests("def test_api(pyairtable_api):\n    pass\n")
    project.run("--pyairtable-timeline", "chart.html").assert_outcomes(passed=1)
    page = (project.path / "chart.html").read_text()
    assert re.search(r'class="tick" style="left:0\.00%">0s<', page)
    assert len(re.findall(r'class="tick"', page)) >= 2
    assert page.count('<div class="tests"') == 1 and "where the tests ran" in page
