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


# A worker that needs its Redis connection and exits 1 when it drops (as many do), and an
# API that restarts with the cache (depends_on ... restart: true, as compose does).
WORKER = """
import os, sys, time, redis
client = redis.Redis(port=int(sys.argv[1]), socket_timeout=2)
deadline = time.monotonic() + 20
while True:  # started with the cache (service_started): wait until it answers
    try:
        client.ping()
        break
    except redis.ConnectionError:
        assert time.monotonic() < deadline
        time.sleep(0.02)
print("worker: connected", flush=True)
open(sys.argv[2], "a").write("started\\n")
while True:
    try:
        client.ping()
    except redis.RedisError as exc:
        print(f"worker: lost redis: {exc}", flush=True)
        sys.exit(1)
    time.sleep(0.05)
"""


def healing_stack(project: Project, cache: int, api: int) -> None:
    (project.path / "worker.py").write_text(WORKER)
    project.compose(f"""
        services:
          cache:
            image: redis:7
            ports: ["{cache}:6379"]
          api:
            image: x
            depends_on: {{cache: {{condition: service_started, restart: true}}}}
            x-pyairtable:
              local: {{command: python -m pytest_pyairtable.standin --name api --port {api}}}
              probe: {{http: "http://127.0.0.1:{api}/health"}}
          worker:
            image: x
            depends_on: [api, cache]
            x-pyairtable:
              local: {{command: [python, worker.py, "{cache}", starts.txt]}}
              probe: {{log: "worker: connected"}}
    """)


def test_a_heal_brings_back_dependents_that_exited_and_restarts_restart_true_ones(
    project: Project, free_ports: Ports
) -> None:
    cache, api = free_ports(2)
    healing_stack(project, cache, api)
    starts = project.path / "starts.txt"
    project.tests(f"""
        import os, pathlib, time

        def test_stop_the_cache(pyairtable_worker, pyairtable_api, pyairtable_faults):
            pyairtable_faults.stop("cache")
            deadline = time.monotonic() + 20
            log = pathlib.Path(pyairtable_worker.log_path)
            while "lost redis" not in log.read_text():  # the worker noticed, and exited
                assert time.monotonic() < deadline
                time.sleep(0.02)

        def test_the_worker_is_back(pyairtable_worker, pyairtable_cache):
            assert pathlib.Path({str(starts)!r}).read_text().count("started") == 2
    """)
    result = project.run("-p", "no:randomly", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*heal: cache was stopped by the fault; restarted, ready in*",
            "*heal: api depends on cache with restart: true; restarted, ready in*",
            "*heal: worker exited 1 during the fault (log: *lost redis*); restarted, ready in*",
        ]
    )


def test_a_heal_that_cannot_restore_the_stack_fails_once_and_points_at_it(
    project: Project, free_ports: Ports
) -> None:
    cache, api = free_ports(2)
    healing_stack(project, cache, api)
    project.tests("""
        import pathlib, time

        def test_break_it(pyairtable_worker, pyairtable_faults):
            pathlib.Path("worker.py").write_text("import sys; print('broken'); sys.exit(3)")
            pyairtable_faults.kill("worker")

        def test_needs_the_worker(pyairtable_worker):
            pass

        def test_needs_only_the_cache(pyairtable_cache):
            pass
    """)
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=2)  # the heal (teardown), then the worker's user
    text = result.stdout.str()
    assert text.count("service 'worker' exited with code 3") >= 1
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_break_it*",
            "*service 'worker' exited with code 3 while starting",
            "*ERROR at setup of test_needs_the_worker*",
            "*exited with code 3 while starting (reported in full at test_project.py::test_break_it)",
        ]
    )


def test_restart_policies_keep_host_processes_as_the_engine_keeps_containers(
    project: Project, free_ports: Ports
) -> None:
    (api,) = free_ports(1)
    # api crashes on its first start (as a service whose database is not up yet may);
    # its policy starts it again. loop never comes up: its policy is reported, not hidden.
    (project.path / "once.sh").write_text(
        f'[ -e crashed ] || {{ touch crashed; echo "first start: crash"; exit 1; }}\n'
        f"exec python -m pytest_pyairtable.standin --name api --port {api}\n"
    )
    project.compose(f"""
        services:
          api:
            image: x
            restart: always
            x-pyairtable:
              local: {{command: [sh, once.sh]}}
              probe: {{http: "http://127.0.0.1:{api}/health"}}
          loop:
            image: x
            restart: on-failure
            healthcheck: {{test: [CMD, "false"], interval: 1s, retries: 4}}
            x-pyairtable:
              local: {{command: [sh, -c, "echo crashing; exit 7"]}}
    """)
    project.tests("""
        import httpx

        def test_api(pyairtable_api):
            assert httpx.get(pyairtable_api.url + "/health").status_code == 200

        def test_loop(pyairtable_loop):
            pass
    """)
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*service 'loop' did not become ready*its restart policy, on-failure, started it "
            "again * times; last exit code 7*",
            "*api: started again 1 times by its restart policy (always; exit codes 1)*",
        ]
    )
