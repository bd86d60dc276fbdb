"""The plugin from the outside: generated projects run with pytester, real processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from leakcheck import LeakCheck

from conftest import Ports, Project
from pytest_pyairtable.backends.markers import MARKER

STANDIN = "python -m pytest_pyairtable.standin --startup-delay 0.1"


def started_services(out: str) -> dict[str, str]:
    """Service -> state, from the summary's start-up timeline table."""
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("started ")) + 3
    rows = []
    for line in lines[first:]:
        if not line.startswith(("* ", "  ")):
            break
        rows.append(line[2:].split())
    return {row[0]: row[-1] for row in rows}


def chain_compose(ports: list[int]) -> str:
    db, cache, api, other = ports
    return f"""
        services:
          postgres:
            image: postgres:16-alpine
            environment: {{POSTGRES_USER: app, POSTGRES_PASSWORD: "${{DB_PASSWORD}}", POSTGRES_DB: appdb}}
            ports: ["{db}:5432"]
          redis:
            image: redis:7-alpine
            command: redis-server --requirepass ${{REDIS_PASSWORD}}
            ports: ["{cache}:6379"]
          api:
            image: example/api
            ports: ["{api}:{api}"]
            depends_on:
              postgres: {{condition: service_healthy}}
              redis: {{condition: service_healthy}}
            healthcheck: {{test: ["CMD-SHELL", "curl -f http://localhost:{api}/health"], interval: 1s}}
            x-pyairtable:
              local:
                command: {STANDIN} --name api --port {api}
                env:
                  DATABASE_URL: postgresql://app:${{DB_PASSWORD}}@127.0.0.1:{db}/appdb
                  REDIS_URL: redis://:${{REDIS_PASSWORD}}@127.0.0.1:{cache}/0
          other:
            image: example/other
            x-pyairtable:
              local: {{command: {STANDIN} --name other --port {other}}}
              probe: {{http: "http://127.0.0.1:{other}/health"}}
    """


def test_dependency_chain_is_up_and_handles_are_complete(
    project: Project, free_ports: Ports
) -> None:
    ports = free_ports(4)
    project.compose(chain_compose(ports))
    project.env("DB_PASSWORD=db-secret-1\nREDIS_PASSWORD=redis-secret-2\n")
    project.tests(f"""
        import httpx, psycopg, redis

        def test_api(pyairtable_api, pyairtable_postgres, pyairtable_redis):
            assert httpx.get(pyairtable_api.url + "/health").json()["status"] == "healthy"
            assert (pyairtable_api.name, pyairtable_api.tier, pyairtable_api.port) == ("api", 2, {ports[2]})
            assert pyairtable_api.host == "127.0.0.1" and pyairtable_api.ready_seconds > 0
            assert (pyairtable_postgres.tier, pyairtable_redis.tier) == (1, 1)
            with psycopg.connect(pyairtable_postgres.url) as conn:
                assert conn.execute("select current_database()").fetchone() == ("appdb",)
            assert redis.Redis.from_url(pyairtable_redis.url).ping()
            assert pyairtable_api.log_path.name == "api.log"
    """)
    result = project.run("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*started 3 of 4 services*", "*postgres*1*ready*", "*api*2*ready*"]
    )
    assert "db-secret-1" not in result.stdout.str() and "redis-secret-2" not in result.stdout.str()


def abc_compose(a: int, b: int, c: int) -> str:
    """Stand-ins a, b (which needs a) and c, on the given ports."""

    def standin(name: str, port: int, extra: str = "") -> str:
        return f"""
          {name}:
            image: x{extra}
            x-pyairtable: {{local: {{command: {STANDIN} --name {name} --port {port}}}, probe: {{http: "http://127.0.0.1:{port}/health"}}}}"""

    needs_a = "\n            depends_on: [a]"
    return "\n        services:" + standin("a", a) + standin("b", b, needs_a) + standin("c", c)


def test_only_the_closure_of_selected_tests_starts(project: Project, free_ports: Ports) -> None:
    a, b, c = free_ports(3)
    project.compose(abc_compose(a, b, c))
    project.tests("""
        import socket

        def test_b(pyairtable_b):
            assert pyairtable_b.tier == 2

        def test_c(pyairtable_c):
            pass

        def test_nothing():
            pass
    """)
    result = project.run("-k", "test_b or test_nothing")
    result.assert_outcomes(passed=2, deselected=1)
    result.stdout.fnmatch_lines(["*started 2 of 3 services*"])
    assert started_services(result.stdout.str()) == {"a": "ready", "b": "ready"}


def test_a_run_that_needs_no_service_starts_nothing(
    project: Project, free_ports: Ports, no_leaks: LeakCheck
) -> None:
    (a,) = free_ports(1)
    project.compose(f"""
        services:
          a:
            image: x
            x-pyairtable: {{local: {{command: {STANDIN} --name a --port {a}}}}}
    """)
    project.tests("def test_plain():\n    pass\n")
    result = project.run()
    result.assert_outcomes(passed=1)
    assert "started" not in result.stdout.str()
    assert no_leaks.runs() == set()  # not even a run dir or a reaper


def failing_compose(ports: list[int]) -> str:
    bad, dependent, good = ports
    return f"""
        services:
          bad:
            image: x
            healthcheck: {{test: ["CMD-SHELL", "curl -f http://localhost:{bad}/health"], interval: 100ms, retries: 3}}
            ports: ["{bad}:{bad}"]
            environment: {{API_TOKEN: tok-secret-77}}
            x-pyairtable:
              local: {{command: ["sh", "-c", "echo \\"cannot reach upstream, token=$$API_TOKEN\\"; exec sleep 30"]}}
          dependent:
            image: x
            depends_on: {{bad: {{condition: service_healthy}}}}
            x-pyairtable:
              local: {{command: {STANDIN} --name dependent --port {dependent}}}
          good:
            image: x
            x-pyairtable:
              local: {{command: {STANDIN} --name good --port {good}}}
              probe: {{http: "http://127.0.0.1:{good}/health"}}
    """


def test_never_healthy_service_errors_once_in_full(
    project: Project, free_ports: Ports, monkeypatch: pytest.MonkeyPatch, no_leaks: LeakCheck
) -> None:
    monkeypatch.setenv("CI", "true")  # pytest then prints summaries untrimmed: still only once
    project.compose(failing_compose(free_ports(3)))
    project.tests("""
        def test_one(pyairtable_bad): pass
        def test_two(pyairtable_dependent): pass
        def test_three(pyairtable_bad): pass
        def test_good(pyairtable_good): pass
        def test_plain(): pass
    """)
    result = project.run()
    result.assert_outcomes(passed=2, errors=3)
    out = result.stdout.str()
    assert out.count("last probe error") == 1, out
    result.stdout.fnmatch_lines(
        [
            "*service 'bad' did not become ready within 0.3s*",
            "*probe: http http://127.0.0.1:*/health*",
            "*last probe error: ConnectionRefusedError*",
            "*cannot reach upstream, token=[*][*][*]",
            "*service 'bad' did not become ready within 0.3s (reported in full at test_project.py::test_one)*",
        ]
    )
    assert "tok-secret-77" not in out
    assert "Traceback" not in out
    # The dependent was never launched: it has no log (the failed run keeps the others').
    (logs,) = no_leaks.root.glob("pyairtable-*-logs")
    assert sorted(p.name for p in logs.iterdir() if p.name != MARKER) == ["bad.log", "good.log"]


def test_crash_during_start_fails_fast_with_log_tail(project: Project, free_ports: Ports) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          crashy:
            image: x
            healthcheck: {{test: ["CMD", "curl", "-f", "http://localhost:{port}/"], interval: 1s, retries: 600}}
            ports: ["{port}:{port}"]
            x-pyairtable:
              local: {{command: ["sh", "-c", "echo boot; echo 'fatal: config missing' >&2; exit 3"]}}
    """)
    project.tests("def test_it(pyairtable_crashy): pass\n")
    result = project.run()
    result.assert_outcomes(errors=1)
    # Exited, not timed out: with 600 retries of 1s a timeout would take ten minutes.
    result.stdout.fnmatch_lines(
        [
            "*service 'crashy' exited with code 3 while starting*",
            "*| boot*",
            "*| fatal: config missing*",
        ]
    )


def test_service_completed_successfully_orders_an_init_job(
    project: Project, free_ports: Ports
) -> None:
    project.compose("""
        services:
          migrate:
            image: tool
            x-pyairtable:
              local: {command: ["sh", "-c", "sleep 0.3; touch migrated"]}
          app:
            image: x
            depends_on: {migrate: {condition: service_completed_successfully}}
            x-pyairtable:
              local: {command: ["sh", "-c", "test -f migrated || exit 9; echo ready; exec sleep 30"]}
              probe: {log: "^ready$"}
          broken-migrate:
            image: tool
            profiles: [broken]
            x-pyairtable: {local: {command: ["sh", "-c", "exit 4"]}}
          broken-app:
            image: x
            profiles: [broken]
            depends_on: {broken-migrate: {condition: service_completed_successfully}}
            x-pyairtable: {local: {command: ["sleep", "30"]}}
    """)
    project.tests("def test_app(pyairtable_app): pass\n")
    project.run().assert_outcomes(passed=1)

    project.tests("def test_app(pyairtable_broken_app): pass\n")
    result = project.run("--pyairtable-profile", "broken")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*service 'broken-migrate' exited with code 4*",
            # broken-app never started: the summary does not count it as started
            "*started 1 of 4 services (1 more that the selected tests need did not start)*",
        ]
    )


def test_profiles_decide_which_fixtures_exist(project: Project, free_ports: Ports) -> None:
    project.compose("""
        services:
          base: {image: x, x-pyairtable: {local: {command: [sleep, "30"]}}}
          debugger: {image: x, profiles: [debug], x-pyairtable: {local: {command: [sleep, "30"]}}}
    """)
    project.tests("def test_it(pyairtable_debugger): pass\n")
    project.run().assert_outcomes(errors=1)
    project.run("--pyairtable-profile", "debug").assert_outcomes(passed=1)


def test_config_errors_reach_only_tests_that_need_the_stack(project: Project) -> None:
    project.compose("""
        services:
          a: {image: "x:${TAG:?set TAG}", environment: {X: "${OTHER:?}"}, x-pyairtable: {local: {command: [sleep, "1"]}}}
    """)
    project.tests("""
        def test_needs(pyairtable_a): pass
        def test_plain(): pass
    """)
    result = project.run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*2 required variable(s) missing*", "*TAG (set TAG)*", "*OTHER*"])
    assert "Traceback" not in result.stdout.str()


def test_up_with_a_broken_file_is_a_usage_error(project: Project) -> None:
    project.compose(
        "services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n"
    )
    result = project.run("--pyairtable-up")
    assert result.ret == 4  # pytest's usage error
    result.stderr.fnmatch_lines(["*depends_on forms a cycle: a -> b -> a*"])


def test_graceful_stop_kills_the_whole_group_after_the_grace_period(
    project: Project, no_leaks: LeakCheck
) -> None:
    """The leader survives SIGTERM (it only logs it) and its child ignores it: after the
    grace period both are SIGKILLed, the child through the process group."""
    project.compose("""
        services:
          stubborn:
            image: x
            stop_grace_period: 200ms
            x-pyairtable:
              local:
                command:
                  - sh
                  - -c
                  - |
                    trap 'echo got TERM' TERM
                    (trap '' TERM; exec sleep 300) &
                    echo "$$$$ $$!" > pids
                    echo started
                    while :; do wait; done
              probe: {log: started}
    """)
    project.tests("def test_it(pyairtable_stubborn): pass\n")
    project.run("--pyairtable-logs-dir", "logs").assert_outcomes(passed=1)
    log = (project.path / "logs" / "stubborn.log").read_text()
    assert "got TERM" in log  # asked politely first
    leader, child = map(int, (project.path / "pids").read_text().split())
    assert no_leaks.processes() == {}  # then killed, the forked child with it
    for pid in (leader, child):
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_header_shows_settings_and_their_sources(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.compose("services: {a: {image: x, x-pyairtable: {local: {command: [sleep, '1']}}}}\n")
    project.tests("def test_plain(): pass\n")
    monkeypatch.setenv("HEALTH_CHECK_TIMEOUT", "45")
    result = project.run("--pyairtable-backend", "local")
    result.stdout.fnmatch_lines(
        [
            "*backend=local (--pyairtable-backend)*health_check_timeout=45.0 (env HEALTH_CHECK_TIMEOUT)*",
            "*compose file(s) *docker-compose.yml (found by compose's default names): 1 services, 1 tiers*",
        ]
    )


def test_debug_shows_every_probe_attempt(project: Project, free_ports: Ports) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          a:
            image: x
            x-pyairtable: {{local: {{command: {STANDIN} --name a --port {port}}}, probe: {{tcp: "127.0.0.1:{port}"}}}}
    """)
    project.tests("def test_it(pyairtable_a): pass\n")
    result = project.run("--pyairtable-debug")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*a * probe #1: ConnectionRefusedError*", "*a * ready in*"])


def test_sigterm_during_tests_stops_the_stack(
    project: Project, free_ports: Ports, no_leaks: LeakCheck
) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          a:
            image: x
            x-pyairtable: {{local: {{command: {STANDIN} --name a --port {port}}}, probe: {{tcp: "127.0.0.1:{port}"}}}}
    """)
    project.tests("""
        import os, signal, time

        def test_cancelled(pyairtable_a):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
    """)
    result = project.run_subprocess("--pyairtable-logs-dir", "logs")
    assert no_leaks.leftovers() == []  # stopped before pytest returned
    assert result.ret == 2  # interrupted, as with Ctrl-C
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    assert "a: stopped" in (project.path / "logs" / "a.log").read_text()  # drained, not killed


def test_pyairtable_stack_starts_every_active_service(project: Project, free_ports: Ports) -> None:
    a, b, c = free_ports(3)
    project.compose(
        abc_compose(a, b, c)
        + """
          debugger:
            image: x
            profiles: [debug]
            x-pyairtable: {local: {command: [no-such-binary-xyz]}}
        """
    )
    project.tests("""
        import httpx

        def test_stack(pyairtable_stack):
            assert list(pyairtable_stack) == ["a", "c", "b"]  # start order: tier, then name
            for name, handle in pyairtable_stack.items():
                assert handle.name == name
                assert httpx.get(handle.url + "/health").json()["service"] == name
            assert [h.tier for h in pyairtable_stack.values()] == [1, 1, 2]

        def test_same_handles(pyairtable_stack, pyairtable_b):
            assert pyairtable_stack["b"] == pyairtable_b
    """)
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*started 3 of 3 services*"])  # not the inactive profile's
    assert started_services(result.stdout.str()) == {"a": "ready", "b": "ready", "c": "ready"}


def test_stack_loaded_ready_and_failed_hooks(project: Project, free_ports: Ports) -> None:
    good, bad = free_ports(2)
    events = project.path / "events.txt"
    project.pytester.makeconftest(f"""
        import threading

        lock = threading.Lock()  # ready/failed come from the threads that start services

        def record(line):
            with lock, open({str(events)!r}, "a") as f:
                f.write(line + "\\n")

        def pytest_pyairtable_stack_loaded(stack):
            record("loaded " + ",".join(sorted(stack.services)))

        def pytest_pyairtable_service_ready(service, details):
            record(f"ready {{service.name}}")

        def pytest_pyairtable_service_failed(run, error):
            with_tail = "bad config at line 3" in str(error)
            record(f"failed {{run.name}} {{type(error).__name__}} log-tail={{with_tail}}")
    """)
    project.compose(f"""
        services:
          good:
            image: x
            x-pyairtable: {{local: {{command: {STANDIN} --name good --port {good}}}, probe: {{http: "http://127.0.0.1:{good}/health"}}}}
          bad:
            image: x
            x-pyairtable:
              local: {{command: ["sh", "-c", "echo 'bad config at line 3'; exit 5"]}}
              probe: {{http: "http://127.0.0.1:{bad}/health"}}
          dependent:
            image: x
            depends_on: {{bad: {{condition: service_healthy}}}}
            x-pyairtable: {{local: {{command: [sleep, "30"]}}}}
    """)
    project.tests("""
        def test_good(pyairtable_good): pass
        def test_dependent(pyairtable_dependent): pass
    """)
    result = project.run()
    result.assert_outcomes(passed=1, errors=1)
    lines = events.read_text().splitlines()
    assert lines[0] == "loaded bad,dependent,good"  # once, before anything started
    assert sorted(lines[1:]) == [
        "failed bad ServiceExitedError log-tail=True",
        "failed dependent DependencyFailedError log-tail=False",
        "ready good",
    ]


def test_service_startup_delay_pauses_before_the_first_probe(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old scripts' fixed pause between a start and the first health check: a
    service that crashes 0.1 s after its start would pass a first probe at once, but
    after the pause it is seen to have exited."""
    project.compose("""
        services:
          a:
            image: x
            x-pyairtable:
              local: {command: ["sh", "-c", "sleep 0.1; echo crashed; exit 7"]}
              probe: {command: ["true"]}
    """)
    project.tests("def test_it(pyairtable_a): pass\n")
    monkeypatch.setenv("SERVICE_STARTUP_DELAY", "2")
    result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*service_startup_delay=2.0 (env SERVICE_STARTUP_DELAY)*",
            "*service 'a' exited with code 7 while starting*",
        ]
    )


def test_the_plugins_own_modules_load_without_assert_rewriting(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest rewrites every module of a plugin's distribution, and where bytecode cannot
    be written (PYTHONDONTWRITEBYTECODE=1) it parses, rewrites and compiles them again on
    every run. Ours load with Python's plain loader (plainimports.py)."""
    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("PYTHONPATH", str(root))  # on sys.path, as an installed package is
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    project.tests("""
        import sys
        from _pytest.assertion.rewrite import AssertionRewritingHook

        def test_loaders():
            import pytest_pyairtable.backends.local, pytest_pyairtable.engine.orchestrator
            import pytest_pyairtable.model.loader, pytest_pyairtable.session.runtime
            ours = {n: m for n, m in sys.modules.items() if n.startswith("pytest_pyairtable")}
            rewritten = {
                n for n, m in ours.items()
                if isinstance(getattr(m, "__loader__", None), AssertionRewritingHook)
            }
            # imported before the finder is in place: the packages on the way to it, the plugin
            before = {"pytest_pyairtable", "pytest_pyairtable.plugin",
                      "pytest_pyairtable.support", "pytest_pyairtable.support.plainimports"}
            assert len(ours) > 20
            assert rewritten <= before, sorted(rewritten - before)
    """)
    result = project.run_subprocess()
    result.assert_outcomes(passed=1)
