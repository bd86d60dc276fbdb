"""pyairtable_reset from the outside: the marker and the fixture in a real project,
errors that fail only the test that asked, and a kept stack whose snapshot outlives
the run that took it."""

from __future__ import annotations

import os

from stackrun import cli, record_of
from teamrepo import team_repo

from conftest import Ports, Project

HELPERS = """
import psycopg, redis

def items(handle):
    with psycopg.connect(handle.url) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM items ORDER BY id")]

def dirty(db, cache, tag):
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("INSERT INTO items (name) VALUES (%s)", [tag])
    redis.Redis.from_url(cache.url).set("dirt", tag)

def keys(handle):
    return sorted(redis.Redis.from_url(handle.url).keys())
"""


def test_the_marker_restores_the_named_services_and_the_fixture_all(
    project: Project, free_ports: Ports
) -> None:
    team_repo(project, *free_ports(3))
    project.tests(
        HELPERS
        + """
import pytest

def test_1_dirty(pyairtable_db, pyairtable_cache):
    dirty(pyairtable_db, pyairtable_cache, "one")

@pytest.mark.pyairtable_reset("db")
def test_2_only_db(pyairtable_db, pyairtable_cache):
    assert items(pyairtable_db) == ["seed"]
    assert keys(pyairtable_cache) == [b"config", b"dirt"]  # not named: left as it was
    dirty(pyairtable_db, pyairtable_cache, "two")

def test_3_everything(pyairtable_reset, pyairtable_db, pyairtable_cache):
    assert sorted(pyairtable_reset.services) == ["cache", "db"]
    assert items(pyairtable_db) == ["seed"] and keys(pyairtable_cache) == [b"config"]

@pytest.mark.pyairtable_reset("dbb")
def test_4_typo(pyairtable_db):
    pass

@pytest.mark.pyairtable_reset("api")
def test_5_not_resettable(pyairtable_api):
    pass

def test_6_untouched_by_the_errors(pyairtable_db):
    assert items(pyairtable_db) == ["seed"]

def test_7_from_the_body(request, pyairtable_db, pyairtable_cache):
    dirty(pyairtable_db, pyairtable_cache, "seven")
    reset = request.getfixturevalue("pyairtable_reset")  # restores then and there
    assert sorted(reset.services) == ["cache", "db"]
    assert items(pyairtable_db) == ["seed"] and keys(pyairtable_cache) == [b"config"]
"""
    )
    result = project.run_subprocess(
        "-p", "no:randomly", "--strict-markers", "-W", "error", timeout=300
    )
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*reset: no service 'dbb' in the stack; services that can be reset: cache, db*",
            "*reset: service 'api' cannot be reset: only PostgreSQL and Redis services can*",
        ]
    )


def test_a_kept_stack_keeps_its_snapshot_and_refuses_faults(
    project: Project, free_ports: Ports
) -> None:
    db, cache, api = free_ports(3)
    team_repo(project, db, cache, api)
    project.tests(
        HELPERS
        + """
import pytest

@pytest.mark.pyairtable_reset("db", "cache")
def test_reset(pyairtable_migrate, pyairtable_db, pyairtable_cache):
    assert items(pyairtable_db) == ["seed"] and keys(pyairtable_cache) == [b"config"]
    dirty(pyairtable_db, pyairtable_cache, "left-by-the-last-run")

def test_fault(pyairtable_db, pyairtable_faults):
    pyairtable_faults.kill("cache")

@pytest.mark.pyairtable_reset("db")
def test_external_reset(pyairtable_db):
    pass
"""
    )
    record = record_of(project.path)
    snapshot = record.with_name("docker-compose.yml.reset.json")
    try:
        kept = project.run_subprocess(
            "-p", "no:randomly", "-k", "not external", "--pyairtable-keep", timeout=300
        )
        kept.assert_outcomes(passed=2)
        assert record.exists() and snapshot.exists()
        assert snapshot.stat().st_mode & 0o777 == 0o600  # the service's data

        attached = project.run_subprocess(
            "-p", "no:randomly", "-k", "not external", "-n", "2", timeout=300
        )
        attached.assert_outcomes(passed=1, errors=1)  # the reset found the first run's snapshot
        attached.stdout.fnmatch_lines(
            [
                "*pyairtable_faults: this run attached to the kept stack in*faults are not "
                "injected into a kept stack*Fix: `pyairtable down`*",
                "*attached to the kept stack*",
            ]
        )

        urls = [
            f"db=postgresql://team:pw-team@127.0.0.1:{db}/team",
            f"cache=redis://127.0.0.1:{cache}/0",
        ]
        external = project.run_subprocess(
            "-p",
            "no:randomly",
            "-k",
            "external or fault",
            "--pyairtable-backend=external",
            *(f"--pyairtable-url={url}" for url in urls),
            timeout=300,
        )
        external.assert_outcomes(errors=2)
        external.stdout.fnmatch_lines(
            [
                "*pyairtable_faults: the external backend attaches to services someone else*",
                "*reset: the external backend attaches to services someone else runs*",
            ]
        )
    finally:
        down = cli("down", cwd=project.path, env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert down.returncode == 0, down.stdout + down.stderr
    assert not record.exists() and not snapshot.exists()


def test_a_reset_as_a_workers_first_request_snapshots_after_the_migrations(
    project: Project, free_ports: Ports
) -> None:
    """Under xdist the controller knows the stack a test run needs only from what workers
    send: a reset sent first must start all of it (the migration job too), or the
    snapshot would be of an empty database."""
    team_repo(project, *free_ports(3))
    project.tests(
        HELPERS
        + """
import pytest

@pytest.mark.pyairtable_reset("db")
def test_0_reset_first(pyairtable_db):
    assert items(pyairtable_db) == ["seed"]

def test_1_api(pyairtable_api):
    pass
"""
    )
    result = project.run_subprocess("-p", "no:randomly", "-n", "1", timeout=300)
    result.assert_outcomes(passed=2)
