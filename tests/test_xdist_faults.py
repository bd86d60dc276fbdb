"""Faults and resets in one run, under xdist and without: a fault test has the stack
alone (every other test that holds the stack waits, on any worker), resets find the
data as the migration left it, and a worker that dies mid-fault is healed after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from stackrun import PYTEST_ARGS
from teamrepo import SPANS, overlapping, spans, team_repo, write_team_repo

from conftest import Ports, Project

SUITE = """
import time
import httpx, psycopg, pytest, redis


def health(handle):
    return httpx.get(handle.url + "/health", timeout=10).status_code


def until(predicate, seconds=30):
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def busy(handle, seconds):
    # A test doing work against the stack for a while: the API must stay healthy.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert health(handle) == 200


@pytest.mark.parametrize("i", range(9))
def test_plain(pyairtable_api, pyairtable_db, i):
    busy(pyairtable_api, 0.3)
    with psycopg.connect(pyairtable_db.url, autocommit=True) as conn:
        conn.execute("INSERT INTO items (name) VALUES ('plain')")  # dirt for the resets


@pytest.mark.parametrize("i", range(2))
def test_fault_kill_cache(pyairtable_api, pyairtable_faults, i):
    assert health(pyairtable_api) == 200
    pyairtable_faults.kill("cache")
    until(lambda: health(pyairtable_api) == 503)  # the API notices


def test_fault_pause_db(pyairtable_api, pyairtable_faults):
    pyairtable_faults.pause("db")
    until(lambda: health(pyairtable_api) == 503)


@pytest.mark.parametrize("i", range(3))
@pytest.mark.pyairtable_reset("db", "cache")
def test_reset_marker(pyairtable_db, pyairtable_cache, i):
    with psycopg.connect(pyairtable_db.url, autocommit=True) as conn:
        assert conn.execute("SELECT name FROM items").fetchall() == [("seed",)]
        conn.execute("INSERT INTO items (name) VALUES ('reset-test')")
    cache = redis.Redis.from_url(pyairtable_cache.url)
    assert cache.keys() == [b"config"]
    cache.set("written", i)


def test_reset_fixture(pyairtable_reset, pyairtable_db, pyairtable_cache, pyairtable_api):
    assert sorted(pyairtable_reset.services) == ["cache", "db"]
    cache = redis.Redis.from_url(pyairtable_cache.url)
    assert cache.keys() == [b"config"]
    cache.set("written", 1)
    assert pyairtable_reset("cache") == ["cache"]  # again, mid-test
    assert cache.keys() == [b"config"]
    assert health(pyairtable_api) == 200
"""


@pytest.mark.parametrize("workers", ["3", "0"])
def test_fault_tests_run_alone_and_resets_see_the_migrated_data(
    project: Project, free_ports: Ports, workers: str
) -> None:
    team_repo(project, *free_ports(3))
    project.tests(SUITE)
    result = project.run_subprocess("-n", workers, "-p", "no:randomly", timeout=300)
    result.assert_outcomes(passed=16)
    recorded = spans(project.path)
    assert len(recorded) == 16
    assert overlapping(recorded, "test_fault") == []
    if workers != "0":
        assert len({s["worker"] for s in recorded}) > 1  # really several workers
        # The plain tests did run beside each other: the lease is shared for them.
        assert overlapping([s for s in recorded if "plain" in s["test"]], "plain")


def test_a_worker_that_dies_mid_fault_is_healed_and_the_others_go_on(
    project: Project, free_ports: Ports
) -> None:
    team_repo(project, *free_ports(3))
    project.tests("""
        import os
        import httpx, pytest

        def test_dies_with_cache_down(pyairtable_api, pyairtable_faults):
            pyairtable_faults.kill("cache")
            os._exit(3)  # the worker crashes before any heal

        @pytest.mark.parametrize("i", range(6))
        def test_after(pyairtable_api, i):
            assert httpx.get(pyairtable_api.url + "/health", timeout=10).status_code == 200
    """)
    result = project.run_subprocess("-n", "2", "-p", "no:randomly", timeout=300)
    out = result.stdout.str()
    assert "crashed" in out, out
    result.assert_outcomes(passed=6, failed=1)
    recorded = spans(project.path)
    assert {s["test"] for s in recorded} == {f"test_after[{i}]" for i in range(6)}


def test_upgrades_from_two_workers_at_once_do_not_deadlock(
    project: Project, free_ports: Ports
) -> None:
    """Two tests already holding the stack each ask for pyairtable_faults mid-test, at
    the same moment: each gives its shared lease up before queueing for the exclusive
    one, so both finish (a deadlock would end in a lease timeout error)."""
    team_repo(project, *free_ports(3))
    project.tests(f"""
        import pathlib, time
        import httpx, pytest

        HERE = pathlib.Path({str(project.path)!r})

        @pytest.mark.parametrize("name", ["a", "b"])
        def test_upgrade(pyairtable_api, request, name):
            (HERE / f"in-{{name}}").touch()
            deadline = time.monotonic() + 60
            while not ((HERE / "in-a").exists() and (HERE / "in-b").exists()):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            faults = request.getfixturevalue("pyairtable_faults")
            faults.kill("cache")
    """)
    result = project.run_subprocess(
        "-n", "2", "-p", "no:randomly", "--pyairtable-lease-timeout", "60", timeout=300
    )
    result.assert_outcomes(passed=2)
    assert overlapping(spans(project.path), "test_upgrade") != []  # they were in the body together


def test_a_lease_timeout_names_the_test_holding_the_stack(
    project: Project, free_ports: Ports
) -> None:
    team_repo(project, *free_ports(3))
    flag = project.path / "fault-errored"
    started = project.path / "slow-started"
    project.pytester.makeconftest(
        (project.path / "conftest.py").read_text()
        + f"""

import pathlib, time

@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    if item.name == "test_fault":  # only once the slow test holds the stack
        deadline = time.monotonic() + 60
        while not pathlib.Path({str(started)!r}).exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    return (yield)

def pytest_runtest_logreport(report):
    if report.when == "setup" and report.failed:
        pathlib.Path({str(flag)!r}).touch()
"""
    )
    project.pytester.makepyfile(
        test_slow=f"""
        import pathlib, time

        def test_slow(pyairtable_api):
            pathlib.Path({str(started)!r}).touch()
            deadline = time.monotonic() + 60
            while not pathlib.Path({str(flag)!r}).exists():  # holds the stack meanwhile
                assert time.monotonic() < deadline
                time.sleep(0.01)
        """,
        test_fault="""
        def test_fault(pyairtable_api, pyairtable_faults):
            pyairtable_faults.kill("cache")
        """,
    )
    result = project.run_subprocess(
        "-n", "2", "--dist", "loadfile", "--pyairtable-lease-timeout", "1", timeout=300
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_fault.py::test_fault waited 1s for the stack alone; held by: gw* "
            "test_slow.py::test_slow (shared, for *s)*--pyairtable-lease-timeout*"
        ]
    )


def test_two_copies_at_once_with_free_ports_faults_and_resets_under_xdist(
    tmp_path: Path, free_ports: Ports
) -> None:
    """The issue's check: one project checked out twice, both suites run at the same
    time with --pyairtable-free-ports and no other change, under -n 3, fault and reset
    tests in the same run. The ports the file defaults to are taken meanwhile (as a
    colleague's stack would take them)."""
    defaults = free_ports(3)
    blockers = []
    for port in defaults:
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        blockers.append(blocker)
    db, cache, api = (
        f"${{{name}:-{port}}}"
        for name, port in zip(("DB_PORT", "CACHE_PORT", "API_PORT"), defaults, strict=True)
    )
    copies = [tmp_path / "one", tmp_path / "two"]
    runs = []
    try:
        for root in copies:
            root.mkdir()
            write_team_repo(root, db, cache, api)
            (root / "conftest.py").write_text(SPANS)
            (root / "test_suite.py").write_text(SUITE)
            runs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-p", "no:randomly",
                     "-n", "3", "-q", "--pyairtable-free-ports", f"--basetemp={root / 'basetemp'}"],
                    cwd=root,
                    env=os.environ,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )  # fmt: skip
        outputs = [run.communicate(timeout=400)[0] for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
        for blocker in blockers:
            blocker.close()
    for run, out in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out
        assert "16 passed" in out, out
    for root in copies:
        recorded = spans(root)
        assert len(recorded) == 16
        assert overlapping(recorded, "test_fault") == []
        assert len({s["worker"] for s in recorded}) > 1
