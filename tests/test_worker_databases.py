"""Under xdist each worker gets its own databases: a suite that passes serially passes
under ``-n 2`` and ``-n 4`` with none of its files changed, and collides without them.

The suite is tests/projects/shop: a FastAPI + SQLModel backend's tests (a pooled
engine, a session-scoped session, module-scoped rows, teardowns that delete all rows,
an alembic migration job). Ten runs in a row of each mode are benchmarks/workerdbs.py's
job; here each mode runs once.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from stackrun import cli
from teamrepo import team_repo

from conftest import LeakCheck, Project

pytest.importorskip("sqlmodel")
pytest.importorskip("alembic")

Ports = Callable[[int], list[int]]
SHOP = Path(__file__).parent / "projects" / "shop"


def shop(project: Project, free_ports: Ports, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shop project in this test's directory, on ports of its own; returns the
    directory where each test process writes the database it used."""
    shutil.copytree(SHOP, project.path, dirs_exist_ok=True)
    db, cache, api = free_ports(3)
    monkeypatch.setenv("SHOP_DB_PORT", str(db))
    monkeypatch.setenv("SHOP_CACHE_PORT", str(cache))
    monkeypatch.setenv("SHOP_API_PORT", str(api))
    seen = project.path / "seen"
    seen.mkdir()
    monkeypatch.setenv("SHOP_SEEN", str(seen))
    return seen


@pytest.mark.parametrize("workers", [0, 2, 4])
def test_the_shop_suite_passes_unchanged_serially_and_under_xdist(
    project: Project,
    free_ports: Ports,
    monkeypatch: pytest.MonkeyPatch,
    no_leaks: LeakCheck,
    workers: int,
) -> None:
    seen = shop(project, free_ports, monkeypatch)
    args = ["-n", str(workers)] if workers else []
    result = project.run_subprocess("-p", "no:randomly", *args, timeout=600)
    result.assert_outcomes(passed=60)
    used = {path.name: path.read_text() for path in seen.iterdir()}
    if not workers:
        assert list(used.values()) == ["shop"]
        return
    # each worker process used its own copy, named by the settings its conftest.py
    # imported (the app's settings read the environment at import)
    assert len(set(used.values())) == len(used) >= 1
    assert set(used.values()) <= {f"shop_gw{n}" for n in range(workers)}
    result.stdout.fnmatch_lines(
        [
            f"db: 1 shared + {workers} worker databases (shop_gw0, *); the stack's "
            "services use the shared shop",
            f"cache: 1 shared + {workers} worker databases (Redis databases *)",
            "worker databases copied in * ms each*: DATABASE_URL, POSTGRES_DB, REDIS_URL",
        ]
    )
    assert "shop-secret" not in result.stdout.str()
    assert no_leaks.leftovers() == []


def test_the_shop_suite_collides_when_the_workers_share_the_database(
    project: Project, free_ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collision the copies prevent is real: the same suite, the same -n 2. It is a
    race (two workers' module fixtures at once), lost in about 9 runs of 10 here
    (benchmarks/workerdbs.py): up to three runs must show it."""
    shop(project, free_ports, monkeypatch)
    for _ in range(3):
        result = project.run_subprocess(
            "-p", "no:randomly", "-n", "2", "--pyairtable-shared-db", timeout=600
        )
        result.stdout.fnmatch_lines(
            ["db: 1 shared database for 2 xdist workers (--pyairtable-shared-db)"]
        )
        outcomes = result.parseoutcomes()
        if outcomes.get("failed", 0) + outcomes.get("errors", outcomes.get("error", 0)):
            break
    else:
        pytest.fail("three runs with one shared database, and no collision")
    out = result.stdout.str()
    assert "IntegrityError" in out or "assert" in out  # another worker's rows, or none


# A conftest.py at the rootdir that reads the environment when it is imported, as a
# settings module does: what it saw, and what the tests then reach.
EARLY_CONFTEST = """
import json, os, pathlib
import psycopg, pytest

SEEN = {name: os.environ.get(name) for name in ("DATABASE_URL", "REDIS_URL")}
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(autouse=True)
def record(request):
    yield
    with (pathlib.Path(__file__).parent / "early.jsonl").open("a") as f:
        f.write(json.dumps({"worker": WORKER, "seen": SEEN}) + "\\n")
"""

EARLY_TESTS = """
import os
import psycopg, pytest, redis
from conftest import SEEN


@pytest.mark.parametrize("n", range(4))
def test_the_handles_name_what_the_conftest_saw(pyairtable_migrate, pyairtable_db, pyairtable_cache, n):
    assert pyairtable_db.url.rsplit("/", 1)[1] == SEEN["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect(SEEN["DATABASE_URL"]) as conn:
        (name,) = conn.execute("SELECT current_database()").fetchone()
        assert name == pyairtable_db.details["databases"]["team"]
        assert conn.execute("SELECT name FROM items").fetchall() == [("seed",)]
        conn.execute("INSERT INTO items (name) VALUES ('mine')")  # never seen by another
        conn.execute("DELETE FROM items WHERE name = 'mine'")
    cache = redis.Redis.from_url(SEEN["REDIS_URL"])
    assert cache.get("config") == b"seed"  # the migration job's key, copied
    assert pyairtable_cache.url == SEEN["REDIS_URL"]


def test_a_worker_dies(pyairtable_migrate, pyairtable_db):
    with psycopg.connect(pyairtable_db.url, autocommit=True) as conn:
        conn.execute("INSERT INTO items (name) VALUES ('left by a dead worker')")
        if os.environ.get("KILL_A_WORKER"):
            os._exit(3)  # its replacement gets a fresh copy: the tests above would see this
        conn.execute("DELETE FROM items WHERE name = 'left by a dead worker'")
"""


def test_the_workers_environment_is_set_before_a_rootdir_conftest_is_imported(
    project: Project, free_ports: Ports
) -> None:
    team_repo(project, *free_ports(3))
    project.pytester.makeconftest(EARLY_CONFTEST)
    project.pytester.makepyfile(test_early=EARLY_TESTS)
    result = project.run_subprocess("-p", "no:randomly", "-n", "2", timeout=300)
    result.assert_outcomes(passed=5)
    lines = (project.path / "early.jsonl").read_text().splitlines()
    seen = {row["worker"]: row["seen"] for row in map(json.loads, lines)}
    assert set(seen) <= {"gw0", "gw1"}
    for worker, env in seen.items():
        assert env["DATABASE_URL"].endswith(f"/team_{worker}")
        assert env["REDIS_URL"].rsplit("/", 1)[1] in {"15", "14"}


def test_a_worker_that_dies_leaves_no_database_behind(
    project: Project, free_ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept stack outlives the run, so what the run left in its server can be seen:
    only the stack's own databases (and the snapshot), no worker's copy, although a
    worker died holding one."""
    db, cache, api = free_ports(3)
    team_repo(project, db, cache, api)
    project.pytester.makeconftest(EARLY_CONFTEST)
    project.pytester.makepyfile(test_early=EARLY_TESTS)
    monkeypatch.setenv("KILL_A_WORKER", "1")
    try:
        result = project.run_subprocess(
            "-p", "no:randomly", "-n", "2", "--pyairtable-keep", timeout=300
        )
        result.assert_outcomes(passed=4, failed=1)
        result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running*test_a_worker_dies*"])
        with psycopg.connect(f"postgresql://team:pw-team@127.0.0.1:{db}/postgres") as conn:
            names = {n for (n,) in conn.execute("SELECT datname FROM pg_database").fetchall()}
            (seed,) = conn.execute("SELECT 1").fetchone()
        assert not [n for n in names if "_gw" in n], names
        assert "team" in names and seed == 1
    finally:
        down = cli("down", cwd=project.path, env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert down.returncode == 0, down.stdout + down.stderr


def test_shared_db_on_a_stack_without_databases_says_so_and_runs_as_before(
    project: Project, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          api:
            image: x
            x-pyairtable:
              local: {{command: python -m pytest_pyairtable.standin --name api --port {port}}}
              probe: {{http: "http://127.0.0.1:{port}/health"}}
    """)
    project.pytester.makeini("[pytest]\npyairtable_shared_db = true\n")  # the ini twin
    project.tests(
        textwrap.dedent("""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_api(pyairtable_api, n):
            assert pyairtable_api.url
        """)
    )
    for args in ([], ["-n", "2"]):
        result = project.run_subprocess(*args, timeout=300)
        result.assert_outcomes(passed=4)
        result.stdout.fnmatch_lines(
            ["--pyairtable-shared-db: the stack has no PostgreSQL or Redis service; *"]
        )
        assert "worker databases" not in result.stdout.str()
