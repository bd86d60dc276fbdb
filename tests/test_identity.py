"""Ready means ours: a service counts as ready only when the socket that answered its
probe belongs to the processes this run started. Two runs started at the same moment on
the same fixed port both find it free and both launch; the one whose server could not
bind must fail, naming the port and who holds it, never be handed the other's server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from containers import service
from stackrun import PYTEST_ARGS

from conftest import Ports, Project
from pytest_pyairtable.backends import sockets
from pytest_pyairtable.backends.local import check_ports_free
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.support.errors import PrerequisiteError

ROWS_TEST = {
    "postgres": """
import os

import psycopg


def test_rows_are_this_runs_own(pyairtable_store):
    from conftest import await_the_other

    await_the_other()
    token = os.environ["TRIAL_TOKEN"]
    with psycopg.connect(pyairtable_store.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS seen (token text)")
        conn.execute("INSERT INTO seen VALUES (%s)", (token,))
        rows = [row[0] for row in conn.execute("SELECT token FROM seen")]
    assert rows == [token], "a server shared with another run"
""",
    "redis": """
import os

import redis


def test_rows_are_this_runs_own(pyairtable_store):
    from conftest import await_the_other

    await_the_other()
    token = os.environ["TRIAL_TOKEN"]
    client = redis.Redis.from_url(pyairtable_store.url)
    try:
        client.set(f"trial:{token}", 1)
        rows = sorted(key.decode() for key in client.keys("trial:*"))
    finally:
        client.close()
    assert rows == [f"trial:{token}"], "a server shared with another run"
""",
}
IMAGES = {"postgres": "postgres:15", "redis": "redis:7"}
INNER = {"postgres": 5432, "redis": 6379}

# The two runs of a trial enter their sessions together (so they launch together), and
# one that got its server holds it until the other's setup is over (so they overlap).
BARRIER = """
import os
import time
from pathlib import Path

ME = os.environ["TRIAL_TOKEN"]
OTHER = ME[:-1] + ("b" if ME.endswith("a") else "a")


def await_file(name):
    deadline = time.monotonic() + 60
    while not Path(name).exists():
        assert time.monotonic() < deadline, f"the other run of the trial never made {name}"
        time.sleep(0.002)


def await_the_other():
    await_file(f"setup-{OTHER}")


def pytest_sessionstart(session):
    Path(f"started-{ME}").touch()
    await_file(f"started-{OTHER}")


def pytest_runtest_logreport(report):
    if report.when == "setup":
        Path(f"setup-{ME}").touch()
"""


def _project(project: Project, server: str, port: int) -> None:
    project.compose(f"""
        services:
          store:
            image: {IMAGES[server]}
            environment: {{POSTGRES_PASSWORD: pw, POSTGRES_DB: app}}
            ports: ["{port}:{INNER[server]}"]
    """)
    project.tests(ROWS_TEST[server])
    project.pytester.makeconftest(BARRIER)


def _start(project: Project, token: str, out: Path) -> subprocess.Popen[bytes]:
    with open(out, "wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-q", "-rE"],
            cwd=project.path,
            stdout=f,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TRIAL_TOKEN": token},
        )


# The bar is 20 trials in a row with never a shared server: PYAIRTABLE_RACE_TRIALS=20
# runs them (the flake hunt does); an ordinary run of the suite tries a few of each.
TRIALS = int(os.environ.get("PYAIRTABLE_RACE_TRIALS", "3"))


@pytest.mark.parametrize(
    ("server", "trials"), [("redis", TRIALS), ("postgres", max(1, TRIALS // 5))]
)
def test_two_runs_on_one_fixed_port_never_share_a_server(
    project: Project, free_ports: Ports, tmp_path: Path, server: str, trials: int
) -> None:
    """Each trial: two runs at once; one runs, the other fails at once naming the port
    and who holds it, and the one that runs sees only its own rows."""
    (port,) = free_ports(1)
    _project(project, server, port)
    holder = re.compile(rf"port {port}\b[^\n]*\bpid \d+")
    for trial in range(trials):
        runs = []
        for side in ("a", "b"):
            out = tmp_path / f"{trial}-{side}.txt"
            runs.append((_start(project, f"{trial}{side}", out), out))
        codes = []
        for proc, _ in runs:
            try:
                codes.append(proc.wait(timeout=120))
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        texts = [out.read_text() for _, out in runs]
        passed = [t for t in texts if re.search(r"\b1 passed\b", t)]
        failed = [t for t in texts if re.search(r"\b1 error\b", t)]
        assert len(passed) == 1 and len(failed) == 1, f"trial {trial}: {texts}"
        said = [line for line in failed[0].splitlines() if "service 'store'" in line]
        assert holder.search(failed[0]), f"trial {trial}: no port and holder in {said}"
        assert "a server shared with another run" not in passed[0]


def test_a_taken_port_is_refused_before_the_start_naming_its_holder(
    free_ports: Ports, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    (tmp_path / "docker-compose.yml").write_text(
        f"services:\n  api:\n    image: x\n    ports: ['{port}:80']\n"
        "    x-pyairtable: {local: {command: [sleep, '1']}}\n"
    )
    svc = load_stack(tmp_path / "docker-compose.yml").services["api"]
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        with pytest.raises(PrerequisiteError) as raised:
            check_ports_free(svc)
    message = str(raised.value)
    assert f"port {port} is already in use: port {port} by pid {os.getpid()} (" in message
    assert "--pyairtable-free-ports" in message


def test_the_ownership_check_finds_the_holder_of_a_listener(free_ports: Ports) -> None:
    (port,) = free_ports(1)
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        assert sockets.foreign_listeners(port, "127.0.0.1", [os.getpid()]) is None
        held.listen()
        assert sockets.foreign_listeners(port, "127.0.0.1", [os.getpid()]) == set()
        assert sockets.foreign_listeners(port, "127.0.0.1", [1]) == sockets.listeners(port)
        assert sockets.holders(sockets.listeners(port)) == [os.getpid()]
    with socket.socket(socket.AF_INET6) as held:  # [::] takes 127.0.0.1 too (dual stack)
        held.bind(("::", port))
        held.listen()
        assert len(sockets.listeners(port, "127.0.0.1")) == 1
        assert sockets.listeners(port, "127.0.0.2") == sockets.listeners(port, "127.0.0.1")


def test_a_container_on_the_host_network_is_ready_only_if_it_holds_the_port(
    compose_project: Project,
    free_ports: Ports,
) -> None:
    """network_mode: host: the container's own processes hold its socket. One whose
    server never listens, on a port another process listens on, is not ready."""
    (port,) = free_ports(1)
    compose_project.compose(
        "services:"
        + service(
            "api",
            f"""
    command: ["/usr/bin/sleep", "300"]
    x-pyairtable: {{probe: {{tcp: "127.0.0.1:{port}"}}}}""",
        )
    )
    compose_project.tests("def test_api(pyairtable_api): pass\n")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = compose_project.run("--pyairtable-backend", "compose")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*port {port} answers, but not from this service's container: it is held by pid "
            f"{os.getpid()} (*"
        ]
    )


def test_a_check_through_another_service_of_the_same_run_is_its_own_affair(
    project: Project, free_ports: Ports
) -> None:
    """A worker whose healthcheck asks the gateway: what answers is the gateway, a
    service of the same run, not another run's server."""
    (api,) = free_ports(1)
    project.compose(f"""
        services:
          api:
            image: x
            x-pyairtable:
              local: {{command: python -m pytest_pyairtable.standin --name api --port {api}}}
              probe: {{tcp: "127.0.0.1:{api}"}}
          worker:
            image: x
            depends_on: [api]
            x-pyairtable:
              local: {{command: [sleep, "300"]}}
              probe: {{http: "http://127.0.0.1:{api}/health"}}
    """)
    project.tests("def test_worker(pyairtable_worker): pass\n")
    project.run().assert_outcomes(passed=1)
