"""--pyairtable-free-ports: two copies of a project, side by side, with no edit.

Every host port taken from a variable with a default gets a free port, the same in every
place the variable is used; literal ports and variables the user set keep their value;
xdist workers, kept stacks and the `pyairtable` command see the same choice."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers import IMAGE
from containers import ROOT as COMPOSE_ROOT
from devstack_file import DEV_STACK_FILE, PORT_VARS, SECRETS
from stackrun import PYTEST_ARGS, cli, listening

from conftest import Ports, Project
from pytest_pyairtable.backends.local import check_ports_free
from pytest_pyairtable.model.portvars import host_variable, port_variables
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.session.ports import PortHolds
from pytest_pyairtable.support.errors import PrerequisiteError


@pytest.mark.parametrize(
    ("entry", "long_form", "expected"),
    [
        ("${API_PORT:-8000}:8000", False, ("API_PORT", "8000")),
        ("${API_PORT-8000}:8000/udp", False, ("API_PORT", "8000")),
        ("127.0.0.1:${API_PORT:-8000}:80", False, ("API_PORT", "8000")),
        ("[::1]:${API_PORT:-8000}:80", False, ("API_PORT", "8000")),
        ("${HOST_IP:-127.0.0.1}:${API_PORT:-8000}:80", False, ("API_PORT", "8000")),
        (" ${API_PORT:-8000} ", True, ("API_PORT", "8000")),
        ("8000:8000", False, None),  # a literal is kept
        ("8000", False, None),
        ("${API_PORT}:8000", False, None),  # no default
        ("${API_PORT:?set it}:8000", False, None),
        ("8000:${CONTAINER_PORT:-8000}", False, None),  # the container side
        ("${A:-8000}-${B:-8010}:80", False, None),  # a range
        ("1${API_PORT:-8000}:80", False, None),  # not alone
        ("$${API_PORT:-8000}:80", False, None),  # escaped: literal text
        ("${API_PORT:-${BASE:-8000}}:80", False, None),  # not a plain number
    ],
)
def test_which_entries_take_the_host_port_from_a_variable_with_a_default(
    entry: str, long_form: bool, expected: tuple[str, str] | None
) -> None:
    assert host_variable(entry, long_form) == expected


def test_a_variable_the_user_set_keeps_its_value() -> None:
    templates = [("${A:-1}:1", False), ("${B:-2}:2", False), ("${C:-3}:3", False)]
    assert port_variables(templates, {"A": "4000", "B": ""}) == {"B": "2", "C": "3"}


COMPOSE = """
services:
  db:
    image: postgres:16
    environment: {POSTGRES_PASSWORD: pw, POSTGRES_DB: app}
    ports: ["${DB_PORT:-{default_db}}:5432"]
  api:
    image: example/api
    ports: ["${API_PORT:-{default_api}}:8000"]
    environment:
      DATABASE_URL: postgresql://postgres:pw@127.0.0.1:${DB_PORT:-{default_db}}/app
    depends_on: {db: {condition: service_healthy}}
    healthcheck: {test: ["CMD-SHELL", "curl -f http://localhost:8000/health"], interval: 1s}
    x-pyairtable:
      local: {command: "python -m pytest_pyairtable.standin --name api --port ${API_PORT:-{default_api}} --startup-delay 0.05"}
  web:
    image: example/web
    environment: {UPSTREAM_URLS: "http://127.0.0.1:${API_PORT:-{default_api}}"}
    ports:
      - target: 80
        published: "${WEB_PORT-{default_web}}"
    depends_on: [api]
    x-pyairtable:
      local: {command: "python -m pytest_pyairtable.standin --name web --port ${WEB_PORT-{default_web}}"}
      probe: {http: "http://127.0.0.1:${WEB_PORT-{default_web}}/health"}
  fixed:
    image: example/fixed
    ports: ["{literal}:80"]
    x-pyairtable:
      local: {command: "python -m pytest_pyairtable.standin --name fixed --port {literal}"}
      probe: {tcp: "127.0.0.1:{literal}"}
"""

TESTS = """
import json, os, httpx

def test_stack(pyairtable_web, pyairtable_fixed, pyairtable_db, request):
    # web is healthy only while api answers on the port web was told: the same value
    assert httpx.get(pyairtable_web.url + "/health").status_code == 200
    seen = {"web": pyairtable_web.port, "fixed": pyairtable_fixed.port,
            "db": pyairtable_db.port, "worker": os.environ.get("PYTEST_XDIST_WORKER", "")}
    with open(f"seen-{os.getpid()}.json", "w") as f:
        json.dump(seen, f)
"""


@pytest.fixture
def defaults(free_ports: Ports) -> Iterator[dict[str, int]]:
    """The defaults the file writes, each taken by another process (as a colleague's
    stack would), and a literal port that is free."""
    db, api, web, literal = free_ports(4)
    blockers = []
    for port in (db, api, web):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        blockers.append(s)
    yield {"default_db": db, "default_api": api, "default_web": web, "literal": literal}
    for s in blockers:
        s.close()


def write_project(root: Path, values: dict[str, int], n: int = 2) -> None:
    text = COMPOSE
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    (root / "docker-compose.yml").write_text(text)
    for i in range(n):
        (root / f"test_stack_{i}.py").write_text(TESTS)


def seen(root: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("seen-*.json"))]


def test_defaults_taken_yet_the_stack_runs_on_free_ports(
    project: Project, defaults: dict[str, int]
) -> None:
    write_project(project.path, defaults, n=1)
    plain = project.run()
    plain.assert_outcomes(errors=1)  # without the option: the defaults are taken
    assert "already in use" in plain.stdout.str()
    result = project.run("--pyairtable-free-ports")
    result.assert_outcomes(passed=1)
    (ports,) = seen(project.path)
    assert ports["fixed"] == defaults["literal"]
    for name in ("db", "web"):
        assert ports[name] != defaults[f"default_{name}"]
    out = result.stdout.str()
    assert f"DB_PORT={ports['db']}" in out and f"WEB_PORT={ports['web']}" in out
    assert "API_PORT=" in out and "free ports:" in out


def test_a_variable_set_by_the_user_keeps_its_value(
    project: Project, defaults: dict[str, int], free_ports: Ports
) -> None:
    (mine,) = free_ports(1)
    write_project(project.path, defaults, n=1)
    (project.path / ".env").write_text(f"WEB_PORT={mine}\n")
    project.run("--pyairtable-free-ports").assert_outcomes(passed=1)
    assert seen(project.path)[0]["web"] == mine


def test_two_copies_at_once_under_xdist(
    tmp_path: Path, defaults: dict[str, int], free_ports: Ports
) -> None:
    """The same project checked out twice, run at the same time, no edit. (Only the
    service with a literal port gets one of its own in each copy: a literal is kept,
    so two copies of it would clash, as they should.)"""
    copies = [tmp_path / "one", tmp_path / "two"]
    literals = free_ports(2)
    runs = []
    for root, literal in zip(copies, literals, strict=True):
        root.mkdir()
        write_project(root, {**defaults, "literal": literal}, n=4)
        runs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    *PYTEST_ARGS,
                    "-n",
                    "2",
                    "-q",
                    f"--basetemp={root / 'basetemp'}",
                ],
                cwd=root,
                env={**os.environ, "PYAIRTABLE_FREE_PORTS": "1"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    for run, out in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out
        assert "4 passed" in out
    views = [seen(root) for root in copies]
    for view in views:  # every worker saw the one choice of its copy
        assert len(view) >= 2 and len({json.dumps({**v, "worker": ""}) for v in view}) == 1
        assert {v["worker"] for v in view} <= {"gw0", "gw1"}
    one, two = views[0][0], views[1][0]
    assert one["db"] != two["db"] and one["web"] != two["web"]
    assert [one["fixed"], two["fixed"]] == literals


def test_a_kept_stack_is_attached_with_its_ports_and_the_cli_shows_them(
    project: Project, defaults: dict[str, int]
) -> None:
    write_project(project.path, defaults, n=1)
    fresh = cli("config", "--free-ports", cwd=project.path)
    assert "chosen for this output only" in fresh.stderr  # nothing runs: chosen now
    published = json.loads(fresh.stdout)["services"]["db"]["ports"][0]["published"]
    assert published != str(defaults["default_db"])
    kept = project.run_subprocess("--pyairtable-free-ports", "--pyairtable-keep")
    kept.assert_outcomes(passed=1)
    try:
        first = seen(project.path)[0]
        for path in project.path.glob("seen-*.json"):
            path.unlink()
        again = project.run("--pyairtable-free-ports")
        again.assert_outcomes(passed=1)
        assert "attached to the kept stack" in again.stdout.str()
        assert seen(project.path)[0] == first
        status = cli("status", "--json", cwd=project.path)
        urls = {r["service"]: r["url"] for r in json.loads(status.stdout)["services"]}
        assert urls["web"] == f"http://127.0.0.1:{first['web']}"
        config = cli("--free-ports", "config", cwd=project.path)
        published = json.loads(config.stdout)["services"]["db"]["ports"][0]["published"]
        assert published == str(first["db"])
        assert "chosen for this output only" not in config.stderr  # the running stack's
    finally:
        assert cli("down", cwd=project.path).returncode == 0
    assert not listening(int(first["web"]))  # type: ignore[call-overload]


def test_ports_stay_held_until_their_service_launches_and_a_lost_race_says_so(
    tmp_path: Path,
) -> None:
    holds = PortHolds.choose(["API_PORT"])
    (port,) = holds.chosen.values()
    other = PortHolds.choose(["API_PORT"])
    try:
        assert other.chosen["API_PORT"] != port
        assert other.hold(port) is None  # another copy never takes a held port
        with socket.socket() as intruder, pytest.raises(OSError):  # one that does not share
            intruder.bind(("127.0.0.1", port))
        (tmp_path / "compose.yml").write_text(
            f'services:\n  api: {{image: x, ports: ["{port}:80"]}}\n'
        )
        svc = load_stack(tmp_path / "compose.yml", environ={}).services["api"]
        holds.release([port])
        assert other.hold(port) is None  # the lock outlives the hold: the service binds next
        with socket.socket() as intruder:  # takes it between release and launch
            intruder.bind(("127.0.0.1", port))
            intruder.listen()
            with pytest.raises(PrerequisiteError) as lost:
                check_ports_free(svc, holds)
        assert "chosen for API_PORT" in str(lost.value) and "run again" in str(lost.value)
    finally:
        holds.close()
        other.close()


def test_the_dev_stack_file_runs_on_free_ports(tmp_path: Path) -> None:
    """The repo's own docker-compose.yml (a copy: its record stays out of the checkout):
    every *_PORT variable used in other services' URLs follows its service (the
    stand-ins are healthy only if their upstreams answer where they were told)."""
    import shutil

    shutil.copy(DEV_STACK_FILE, tmp_path / "docker-compose.yml")
    env = {**SECRETS, "STANDIN_DELAY": "0.05"}
    up = cli("--free-ports", "up", "--detach", cwd=tmp_path, env=env, drop=PORT_VARS)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        chosen = json.loads((tmp_path / ".pyairtable" / "docker-compose.yml.json").read_text())
        assert set(chosen["ports"]) == set(PORT_VARS)
        status = cli("status", "--json", cwd=tmp_path, env=env)
        rows = json.loads(status.stdout)["services"]
        assert status.returncode == 0 and all(r["health"] == "healthy" for r in rows)
        gateway = next(r["url"] for r in rows if r["service"] == "api-gateway")
        assert gateway == f"http://127.0.0.1:{chosen['ports']['API_GATEWAY_PORT']}"
    finally:
        down = cli("down", cwd=tmp_path, env=env)
        assert down.returncode == 0, down.stdout + down.stderr


def test_the_compose_backend_gets_the_same_values(
    compose_project: Project,
    defaults: dict[str, int],
) -> None:
    """Compose reads the file itself: it must see the chosen value too (the container's
    command listens on it, with host networking here)."""
    default = defaults["default_web"]
    compose_project.compose(f"""
        services:
          web:
            image: {IMAGE}
            network_mode: host
            volumes: ["/usr:/usr:ro", "{COMPOSE_ROOT}:/app:ro"]
            environment: {{PYTHONPATH: /app}}
            ports: ["${{WEB_PORT:-{default}}}:80"]
            command: ["/usr/bin/python3", "-m", "pytest_pyairtable.standin", "--name", "web", "--port", "${{WEB_PORT:-{default}}}"]
            x-pyairtable: {{probe: {{http: "http://127.0.0.1:${{WEB_PORT:-{default}}}/health"}}}}
    """)
    compose_project.tests(f"""
        import httpx

        def test_web(pyairtable_web):
            assert pyairtable_web.port != {default}
            assert httpx.get(pyairtable_web.url + "/health").status_code == 200
    """)
    result = compose_project.run("--pyairtable-backend=compose", "--pyairtable-free-ports")
    result.assert_outcomes(passed=1)
