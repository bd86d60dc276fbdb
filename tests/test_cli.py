"""The `pyairtable` command as a subprocess against real services; kept and external stacks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from leakcheck import LeakCheck, kill_own
from stackrun import cli

from conftest import Ports, Project, wait_until
from pytest_pyairtable.engine.orchestrator import Handle


def test_wait_postgres_with_and_without_tables(servers: dict[str, Handle]) -> None:
    dsn = servers["db"].url
    ok = cli("wait", dsn, "--timeout", "5")
    assert ok.returncode == 0, ok.stderr
    assert "ready: postgresql://probe:***@" in ok.stdout and "pw-probe" not in ok.stdout
    missing = cli("wait", dsn, "--table", "nope_a", "--table", "nope_b", "--timeout", "0.3")
    assert missing.returncode == 1
    assert "NOT ready" in missing.stderr and "missing table(s): nope_a, nope_b" in missing.stderr
    migrations = cli("wait", dsn, "--migrations-table", "alembic_version", "--timeout", "0.3")
    assert migrations.returncode == 1 and "'alembic_version' does not exist" in migrations.stderr


def test_wait_redis_wrong_password(servers: dict[str, Handle]) -> None:
    good = cli("wait", servers["cache"].url, "--timeout", "5")
    assert good.returncode == 0 and "memory=" in good.stdout and "version=" in good.stdout
    wrong = servers["cache"].url.replace("pw-redis", "not-the-pw")
    bad = cli("wait", wrong, "--timeout", "0.3")
    assert bad.returncode == 1
    assert "AuthenticationError" in bad.stderr and "not-the-pw" not in bad.stderr


class OnlyHealthz(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def healthz_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OnlyHealthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_wait_discovers_the_health_endpoint(healthz_server: str) -> None:
    done = cli("wait", healthz_server, "--timeout", "5")
    assert done.returncode == 0, done.stderr
    assert "endpoint=/healthz" in done.stdout and "response_ms=" in done.stdout


def test_wait_tcp_and_the_seed_env_vars(free_ports: Ports) -> None:
    (port,) = free_ports(1)
    done = cli("wait", f"tcp://127.0.0.1:{port}", env={"MAX_RETRIES": "3", "TIMEOUT": "30"})
    assert done.returncode == 1 and "gave up after MAX_RETRIES=3" in done.stderr
    timed = cli("wait", f"tcp://127.0.0.1:{port}", env={"TIMEOUT": "0.2", "RETRY_INTERVAL": "0.05"})
    assert timed.returncode == 1 and "ConnectionRefused" in timed.stderr
    bad = cli("wait", "ftp://x")
    assert bad.returncode == 2 and "unknown scheme 'ftp'" in bad.stderr


def small_stack(project: Project, ports: list[int]) -> None:
    a, b, cache = ports
    project.compose(f"""
        services:
          cache:
            image: redis:7
            command: redis-server --requirepass cli-secret-9
            ports: ["{cache}:6379"]
          a:
            image: x
            depends_on: {{cache: {{condition: service_healthy}}}}
            x-pyairtable:
              local:
                command: python -m pytest_pyairtable.standin --name a --port {a} --startup-delay ${{DELAY:-0}}
                env: {{REDIS_URL: "redis://:cli-secret-9@127.0.0.1:{cache}/0"}}
              probe: {{http: "http://127.0.0.1:{a}/health"}}
          b:
            image: x
            depends_on: {{a: {{condition: service_healthy}}}}
            x-pyairtable:
              local: {{command: python -m pytest_pyairtable.standin --name b --port {b}}}
              probe: {{http: "http://127.0.0.1:{b}/health"}}
    """)


def stopped_order(down_output: str) -> list[str]:
    """Service names in the order `pyairtable down` reported them stopped."""
    return [
        line.split()[1]
        for line in down_output.splitlines()
        if line.startswith("pyairtable: ") and line.split()[2:3] == ["stopped"]
    ]


def test_up_detach_status_logs_down(
    project: Project, free_ports: Ports, monkeypatch: pytest.MonkeyPatch, no_leaks: LeakCheck
) -> None:
    small_stack(project, free_ports(3))
    up = cli("up", "--detach", cwd=project.path)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "stack kept running" in up.stdout and "cli-secret-9" not in up.stdout
    try:
        status = cli("status", "--json", cwd=project.path)
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        assert [s["service"] for s in data["services"]] == ["cache", "a", "b"]
        for row in data["services"]:
            assert set(row) == {
                "service",
                "state",
                "health",
                "tier",
                "url",
                "uptime_seconds",
                "error",
            }
            assert (row["state"], row["health"]) == ("running", "healthy")
            assert isinstance(row["tier"], int) and isinstance(row["uptime_seconds"], float)
        assert data["services"][0]["url"].startswith("redis://:***@")
        logs = cli("logs", "a", cwd=project.path)
        assert "a: listening on" in logs.stdout
        # a pytest run attaches to it instead of booting its own
        project.tests("def test_it(pyairtable_b):\n    assert pyairtable_b.tier == 3\n")
        result = project.run()
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*attached to the kept stack (3 services)*"])
        verbose = project.run_subprocess("-v")
        verbose.assert_outcomes(passed=1)
        verbose.stdout.fnmatch_lines(["*attached to the kept stack in *docker-compose.yml.json*"])
        # a changed env changes the fingerprint: reported, and not attached to
        monkeypatch.setenv("DELAY", "0.01")
        refused = project.run()
        refused.stdout.fnmatch_lines(
            ["*not attaching to the kept stack*different compose file, env or profiles*"]
        )
        monkeypatch.delenv("DELAY")
        # one service dies: status says so, and fails
        (b_pid,) = no_leaks.service_pids("b")
        kill_own(b_pid, no_leaks.is_own)
        wait_until(lambda: not no_leaks.service_pids("b"), what="'b' to exit")
        broken = cli("status", cwd=project.path)
        assert broken.returncode == 1, broken.stdout
        rows = {line.split()[0]: line.split()[1:3] for line in broken.stdout.splitlines()}
        assert rows == {
            "cache": ["running", "healthy"],
            "a": ["running", "healthy"],
            "b": ["exited", "unhealthy"],
        }
    finally:
        down = cli("down", cwd=project.path)
    assert down.returncode == 0, down.stderr
    assert stopped_order(down.stdout) == ["b", "a", "cache"], down.stdout  # dependents first
    assert no_leaks.processes() == {}
    assert not (project.path / ".pyairtable" / "docker-compose.yml.json").exists()
    assert cli("status", cwd=project.path).returncode == 2


def test_up_lists_all_missing_prerequisites(
    project: Project, free_ports: Ports, no_leaks: LeakCheck
) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          a: {{image: x, x-pyairtable: {{local: {{command: [no-such-binary-xyz]}}}}}}
          b: {{image: ghcr.io/some/app}}
          c:
            image: x
            ports: ["{port}:{port}"]
            x-pyairtable: {{local: {{command: [sleep, "1"]}}}}
    """)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        done = cli("up", cwd=project.path)
    assert done.returncode == 2
    assert "3 prerequisite(s) missing" in done.stderr
    assert "'no-such-binary-xyz' not found" in done.stderr
    assert "service 'b' has no x-pyairtable.local.command" in done.stderr
    assert f"port {port} is already in use" in done.stderr
    assert no_leaks.runs() == set()  # nothing was started: not even a run dir


def test_pytest_up_keep_then_down(project: Project, free_ports: Ports, no_leaks: LeakCheck) -> None:
    small_stack(project, free_ports(3))
    result = project.run_subprocess("--pyairtable-up", "--pyairtable-keep")
    try:
        assert result.ret == 0, result.stdout.str()
        assert "stack kept running" in result.stdout.str()
        for name in ("cache", "a", "b"):  # still running after pytest exited
            assert no_leaks.service_pids(name), name
    finally:
        down = cli("down", "--volumes", cwd=project.path)
    assert down.returncode == 0 and "removed logs" in down.stdout
    assert stopped_order(down.stdout) == ["b", "a", "cache"]
    assert no_leaks.processes() == {}


def test_down_emergency_kills_at_once(project: Project, no_leaks: LeakCheck) -> None:
    """`down --emergency` SIGKILLs without asking; a plain `down` sends SIGTERM first."""
    project.compose("""
        services:
          stubborn:
            image: x
            stop_grace_period: 300ms
            x-pyairtable:
              local:
                command: ["sh", "-c", "trap 'echo got TERM' TERM; echo started; while :; do sleep 1 & wait; done"]
              probe: {log: started}
    """)
    logs: list[str] = []
    for how in (["--emergency"], []):
        up = cli("up", "--detach", cwd=project.path)
        assert up.returncode == 0, up.stdout + up.stderr
        assert no_leaks.service_pids("stubborn")
        down = cli("down", *how, cwd=project.path)
        assert down.returncode == 0, down.stderr
        assert stopped_order(down.stdout) == ["stubborn"]
        assert no_leaks.processes() == {}  # gone when `down` returns
        # nothing failed: the logs went with the stack; the last run's tail stays
        assert list(no_leaks.root.glob("pyairtable-*")) == []
        last = cli("logs", "stubborn", cwd=project.path)
        assert last.returncode == 0, last.stderr
        logs.append(last.stdout)
    emergency, graceful = logs
    assert "got TERM" not in emergency and "started" in emergency
    assert "got TERM" in graceful


def test_external_backend_probes_and_never_stops(
    project: Project, free_ports: Ports, tmp_path: Path
) -> None:
    a, b = free_ports(2)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest_pyairtable.standin", "--name", n, "--port", str(p)],
            stdout=subprocess.DEVNULL,
        )
        for n, p in (("a", a), ("b", b))
    ]
    try:
        project.compose(f"""
            services:
              a:
                image: x
                healthcheck: {{test: ["CMD", "curl", "-f", "http://localhost:8000/health"]}}
                ports: ["8000:8000"]
                x-pyairtable: {{url: "http://127.0.0.1:{a}"}}
              b:
                image: x
                depends_on: [a]
                x-pyairtable: {{probe: {{http: "http://example.invalid/health"}}}}
        """)
        project.tests(f"""
            def test_it(pyairtable_b, pyairtable_a):
                assert pyairtable_a.url == "http://127.0.0.1:{a}"
                assert pyairtable_b.url == "http://127.0.0.1:{b}"
        """)
        result = project.run(
            "--pyairtable-backend", "external", "--pyairtable-url", f"b=http://127.0.0.1:{b}"
        )
        result.assert_outcomes(passed=1)
        assert all(p.poll() is None for p in procs)  # never stopped
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def test_external_backend_with_postgres_and_redis_urls(
    project: Project,
    servers: dict[str, Handle],
    no_leaks: LeakCheck,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CI service containers: PostgreSQL and Redis given as URLs are probed with their
    own protocol (a query, a PING) and handed to tests as given; a wrong password is a
    setup error naming the cause, with the password kept out of the output."""
    dsn, redis_url = servers["db"].url, servers["cache"].url
    project.compose("""
        services:
          db: {image: postgres:16}
          cache: {image: redis:7-alpine}
          api:
            image: x
            depends_on: {db: {condition: service_healthy}, cache: {condition: service_healthy}}
    """)
    project.tests(f"""
        import psycopg, redis

        def test_it(pyairtable_db, pyairtable_cache):
            assert (pyairtable_db.url, pyairtable_cache.url) == ({dsn!r}, {redis_url!r})
            assert pyairtable_db.details["version"].startswith("1")  # from the postgres probe
            assert "memory" in pyairtable_cache.details  # from the redis probe (INFO)
            with psycopg.connect(pyairtable_db.url) as conn:
                assert conn.execute("select current_user").fetchone() == ("probe",)
            assert redis.Redis.from_url(pyairtable_cache.url).ping()
    """)
    urls = ("--pyairtable-url", f"db={dsn}", "--pyairtable-url", f"cache={redis_url}")
    result = project.run("--pyairtable-backend", "external", *urls)
    result.assert_outcomes(passed=1)
    assert no_leaks.processes() == {}  # the external backend starts nothing

    wrong = (
        "--pyairtable-url",
        "db=" + dsn.replace("pw-probe", "wrong-pg-pw"),
        "--pyairtable-url",
        "cache=" + redis_url.replace("pw-redis", "wrong-redis-pw"),
    )
    project.tests("""
        def test_db(pyairtable_db): pass
        def test_cache(pyairtable_cache): pass
    """)
    monkeypatch.setenv("HEALTH_CHECK_TIMEOUT", "1")  # a wrong password is retried until then
    failed = project.run("--pyairtable-backend", "external", *wrong)
    failed.assert_outcomes(errors=2)
    failed.stdout.fnmatch_lines_random(
        [
            "*service 'db' did not become ready*",
            "*password authentication failed*",
            "*service 'cache' did not become ready*",
            "*AuthenticationError*",
        ]
    )
    out = failed.stdout.str()
    assert "wrong-pg-pw" not in out and "wrong-redis-pw" not in out


def test_up_shows_a_live_progress_line_on_a_terminal(project: Project, free_ports: Ports) -> None:
    import shlex

    small_stack(project, free_ports(3))
    command = shlex.join([sys.executable, "-m", "pytest_pyairtable.cli", "up", "--detach"])
    env = {k: v for k, v in os.environ.items() if k != "CI"}  # CI gets plain lines only
    env["TERM"] = "xterm"
    try:
        tty = subprocess.run(
            ["script", "-qec", command, "/dev/null"],
            cwd=project.path,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )  # bytes: keep "\r"
        out = tty.stdout.decode()
        assert tty.returncode == 0, out
        assert "\r\x1b[K[" in out and "ready," in out and "starting:" in out
    finally:
        cli("down", cwd=project.path)
    plain = cli("up", "--detach", cwd=project.path)  # not a terminal: no control sequences
    try:
        assert plain.returncode == 0 and "\x1b[" not in plain.stdout
    finally:
        cli("down", cwd=project.path)
