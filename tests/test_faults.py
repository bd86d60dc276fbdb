"""Fault injection and data safety, with real processes, PostgreSQL and Redis."""

from __future__ import annotations

from faultcases import FAULT_TESTS

from conftest import Ports, Project


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
