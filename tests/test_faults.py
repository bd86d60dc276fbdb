"""Fault injection and data safety, with real processes, PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Callable

from conftest import Project

Ports = Callable[[int], list[int]]

# Run against a stack of 'a' and 'b' (which reports unhealthy while 'a' is down), on
# any backend: each fault, and the stack healed before the next test.
FAULT_TESTS = """
import httpx, pytest, time

def health(handle):  # a loaded machine may answer slowly: that is not what is tested
    return httpx.get(handle.url + "/health", timeout=10).status_code

def until(predicate):
    deadline = time.monotonic() + 20
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.02)

def test_kill(pyairtable_b, pyairtable_a, pyairtable_faults):
    assert health(pyairtable_b) == 200
    pyairtable_faults.kill("a")
    until(lambda: health(pyairtable_b) == 503)  # b notices its dependency is gone

def test_healed_after_kill(pyairtable_b, pyairtable_a):
    assert health(pyairtable_b) == 200 and health(pyairtable_a) == 200

def test_pause(pyairtable_a, pyairtable_faults):
    pyairtable_faults.pause("a")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(pyairtable_a.url + "/health", timeout=0.5)

def test_healed_after_pause(pyairtable_a):
    assert health(pyairtable_a) == 200

def test_stop_and_restart(pyairtable_a, pyairtable_faults):
    pyairtable_faults.stop("a")
    with pytest.raises(httpx.ConnectError):
        health(pyairtable_a)
    assert health(pyairtable_faults.restart("a")) == 200

def test_unknown_service(pyairtable_faults):
    with pytest.raises(Exception, match="service 'nope' is not running"):
        pyairtable_faults.kill("nope")
"""


def test_faults_break_one_service_and_the_next_test_finds_the_stack_healed(
    project: Project, free_ports: Ports
) -> None:
    a, b = free_ports(2)
    project.compose(f"""
        services:
          a:
            image: x
            x-pyairtable:
              local: {{command: python -m pytest_pyairtable.standin --name a --port {a}}}
              probe: {{http: "http://127.0.0.1:{a}/health"}}
          b:
            image: x
            depends_on: {{a: {{condition: service_healthy}}}}
            x-pyairtable:
              local:
                command: python -m pytest_pyairtable.standin --name b --port {b}
                env: {{UPSTREAM_URLS: "http://127.0.0.1:{a}"}}
              probe: {{http: "http://127.0.0.1:{b}/health"}}
    """)
    project.tests(FAULT_TESTS)
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=6)


def test_restart_keeps_postgres_data_and_stop_runs_data_safety_steps(
    project: Project, free_ports: Ports
) -> None:
    db, cache = free_ports(2)
    project.compose(f"""
        services:
          postgres:
            image: postgres:16
            environment: {{POSTGRES_USER: u, POSTGRES_PASSWORD: pw-pg-safety, POSTGRES_DB: d}}
            ports: ["{db}:5432"]
          redis:
            image: redis:7
            command: redis-server --requirepass pw-redis-safety --save 3600 1
            ports: ["{cache}:6379"]
    """)
    steps = project.path / "steps.txt"
    project.pytester.makeconftest(f"""
        def pytest_pyairtable_before_stop(run):
            with open({str(steps)!r}, "a") as f:
                f.write(f"{{run.name}}: {{run.details.get('before_stop')}}\\n")
    """)
    project.tests("""
        import psycopg

        def test_restart_postgres(pyairtable_postgres, pyairtable_redis, pyairtable_faults):
            with psycopg.connect(pyairtable_postgres.url, autocommit=True) as conn:
                conn.execute("CREATE TABLE kept (id int)")
            handle = pyairtable_faults.restart("postgres")
            with psycopg.connect(handle.url) as conn:
                assert conn.execute("SELECT to_regclass('kept')").fetchone() == ("kept",)
    """)
    project.run().assert_outcomes(passed=1)
    assert sorted(steps.read_text().splitlines()) == [
        "postgres: CHECKPOINT done",
        "redis: SAVE done",
    ]
