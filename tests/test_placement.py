"""A stack placed over the host and containers (--pyairtable-local): the service under
test runs from the working tree as a host process, its dependencies and dependents as
containers on the engine, in one fixture graph; each side reaches the other by name.

This machine's engine has no bridge network: the end-to-end tests use host-network
containers; the bridge path is checked through the configuration of the containers the
backend creates (their host entries)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from containers import IMAGE, docker_cli, our_containers, service
from stackrun import PYTEST_ARGS, cli

from conftest import Background, LeakCheck, Ports, Project, unique_run_id, wait_until
from pytest_pyairtable.backends.addressing import names_of, reach_of, rewrite_environment
from pytest_pyairtable.backends.base import BackendOptions, Placement, backend_class
from pytest_pyairtable.model.spec import ServiceSpec, load_stack
from pytest_pyairtable.support.errors import ConfigError


def container_standin(name: str, port: int, upstream: str = "", extra: str = "") -> str:
    env = f", UPSTREAM_URLS: {upstream!r}" if upstream else ""
    return service(
        name,
        f"""
    command: ["/usr/bin/python3", "-m", "pytest_pyairtable.standin", "--name", "{name}", "--port", "{port}"]
    x-pyairtable: {{probe: {{http: "http://127.0.0.1:{port}/health"}}}}{extra}""",
    ).replace("environment: {PYTHONPATH: /app}", f"environment: {{PYTHONPATH: /app{env}}}")


def three_tier(db: int, api: int, web: int) -> str:
    """web (container) -> api (the service under test: on the host) -> db (container)."""
    return (
        "services:"
        + container_standin("db", db, extra="\n    healthcheck: {test: [CMD, /usr/bin/true]}")
        + f"""
  api:
    image: example.org/team/api:1.4
    depends_on: {{db: {{condition: service_healthy}}}}
    environment: {{UPSTREAM_URLS: "http://db:{db}"}}
    ports: ["{api}:{api}"]
    x-pyairtable:
      local: {{command: [{sys.executable}, -m, pytest_pyairtable.standin, --name, api, --port, "{api}"]}}
      probe: {{http: "http://127.0.0.1:{api}/health"}}"""
        + container_standin(
            "web", web, upstream=f"http://api:{api}", extra="\n    depends_on: [api]"
        )
    )


TESTS = """
    import httpx

    def test_web_reaches_api_reaches_db(pyairtable_web, pyairtable_api):
        # each /health answers 200 only while its own upstream answers
        assert httpx.get(pyairtable_web.url + "/health").json()["status"] == "healthy"
        assert httpx.get(pyairtable_api.url + "/health").json()["status"] == "healthy"
"""


@pytest.fixture
def placed(request: pytest.FixtureRequest, project: Project) -> Project:
    request.getfixturevalue("engine")  # skips, saying why, without one
    assert our_containers() == [], "a previous test of this run left containers"
    return project


def test_the_service_under_test_runs_on_the_host_between_containers(
    placed: Project, free_ports: Ports, no_leaks: LeakCheck
) -> None:
    db, api, web = free_ports(3)
    placed.compose(three_tier(db, api, web))
    placed.tests(TESTS)
    result = placed.run("--pyairtable-local", "api", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*started 3 of 3 services*",
            "*service*runs on",
            "*db *ready  container",
            "*api *ready  host",
            "*web *ready  container",
        ]
    )
    # with -v: the host-run service's environment was pointed at the container
    result.stdout.fnmatch_lines([f"*api on the host: UPSTREAM_URLS: db:{db} -> 127.0.0.1:{db}*"])
    assert our_containers() == []
    assert no_leaks.processes() == {}


def test_without_the_option_nothing_changes(placed: Project, free_ports: Ports) -> None:
    db, api, web = free_ports(3)
    placed.compose(three_tier(db, api, web))
    placed.tests("def test_db(pyairtable_db): pass\n")
    result = placed.run("--pyairtable-backend", "compose")
    result.assert_outcomes(passed=1)
    assert "runs on" not in result.stdout.str()


def test_one_placed_stack_for_every_xdist_worker(placed: Project, free_ports: Ports) -> None:
    db, api, web = free_ports(3)
    placed.compose(three_tier(db, api, web))
    placed.tests(TESTS)
    (placed.path / "test_more.py").write_text(
        "import httpx\n\ndef test_api(pyairtable_api):\n"
        "    assert httpx.get(pyairtable_api.url + '/health').status_code == 200\n"
    )
    result = placed.run_subprocess("-n", "2", "--pyairtable-local", "api", timeout=180)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*started 3 of 3 services*"])
    assert result.stdout.str().count("started 3 of 3") == 1  # one stack, booted once
    assert our_containers() == []


def test_pyairtable_up_local_status_and_down(placed: Project, free_ports: Ports) -> None:
    db, api, web = free_ports(3)
    placed.compose(three_tier(db, api, web))
    up = cli("up", "--local", "api", "--detach", cwd=placed.path)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "runs on" in up.stdout and "host" in up.stdout
    try:
        status = cli("status", cwd=placed.path)
        assert status.returncode == 0, status.stdout + status.stderr
        lines = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
        assert lines["api"].endswith("on the host") and "on the container" in lines["db"]
    finally:
        down = cli("down", cwd=placed.path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert our_containers() == []


def hanging_run(
    placed: Project, free_ports: Ports, background: Background
) -> subprocess.Popen[bytes]:
    """pytest in the background with the placed stack up and its one test hanging."""
    db, api, web = free_ports(3)
    placed.compose(three_tier(db, api, web))
    ready = placed.path / "ready"
    placed.tests(f"""
        import pathlib, time

        def test_hangs(pyairtable_web):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(300)
    """)
    proc = background(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, "--pyairtable-local", "api"],
        cwd=placed.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: ready.exists() or proc.poll() is not None, timeout=90, what="the test")
    assert proc.poll() is None
    return proc


def test_a_killed_run_leaves_neither_containers_nor_processes(
    placed: Project, free_ports: Ports, background: Background, no_leaks: LeakCheck
) -> None:
    proc = hanging_run(placed, free_ports, background)
    assert our_containers(proc.pid) and no_leaks.processes()  # both kinds run now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_until(lambda: not our_containers(proc.pid), timeout=30, what="the container reaper")
    wait_until(lambda: not no_leaks.processes(), timeout=30, what="the process reaper")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_both_kinds(
    placed: Project,
    free_ports: Ports,
    background: Background,
    no_leaks: LeakCheck,
    stop: signal.Signals,
) -> None:
    proc = hanging_run(placed, free_ports, background)
    proc.send_signal(stop)
    assert proc.wait(60) != 0
    assert our_containers(proc.pid) == []  # gone when pytest returns: no reaper needed
    assert no_leaks.processes() == {}


# -- bad input ---------------------------------------------------------------------------


def test_bad_names_and_services_that_cannot_run_on_the_host_say_the_fix(
    placed: Project, free_ports: Ports
) -> None:
    db, api, web = free_ports(3)
    placed.compose(three_tier(db, api, web))
    placed.tests("def test_api(pyairtable_api): pass\n")
    unknown = placed.run("--pyairtable-local", "apx")
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    unknown.stderr.fnmatch_lines(["*unknown service(s) apx*active services are: db, api, web*"])
    no_block = placed.run("--pyairtable-local", "web")
    assert no_block.ret == pytest.ExitCode.USAGE_ERROR
    text = no_block.stderr.str()
    assert "service 'web' has no way to run as a local process" in text
    assert "x-pyairtable:" in text and "local:" in text and "command:" in text  # the block
    assert our_containers() == []


def test_a_dependency_that_publishes_no_port_is_named(placed: Project, free_ports: Ports) -> None:
    (api,) = free_ports(1)
    placed.compose(f"""
        services:
          mcp:
            image: {IMAGE}
            network_mode: none
            volumes: ["/usr:/usr:ro"]
            command: [sleep, "300"]
            stop_signal: SIGKILL
          api:
            image: x
            depends_on: [mcp]
            environment: {{MCP_URL: "http://mcp:8001/v1"}}
            x-pyairtable:
              local: {{command: [{sys.executable}, -m, pytest_pyairtable.standin, --name, api, --port, "{api}"]}}
              probe: {{tcp: "127.0.0.1:{api}"}}
    """)
    placed.tests("def test_api(pyairtable_api): pass\n")
    result = placed.run("--pyairtable-local", "api")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*service 'api' runs on the host and reaches 'mcp' at mcp:8001 (MCP_URL)*"
         "publishes no port 8001*Fix: publish it*--pyairtable-local mcp*"]
    )  # fmt: skip
    assert our_containers() == []


def test_the_external_backend_cannot_hold_the_rest(project: Project) -> None:
    project.compose("services: {a: {image: x, x-pyairtable: {local: {command: [sleep, '9']}}}}\n")
    project.tests("def test_a(pyairtable_a): pass\n")
    result = project.run("--pyairtable-local", "a", "--pyairtable-backend", "external")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pyairtable-local*the external backend starts none*"])


# -- addressing, as data -----------------------------------------------------------------


def _stack(tmp_path: Path, text: str) -> dict[str, ServiceSpec]:
    path = tmp_path / "docker-compose.yml"
    path.write_text(text)
    return dict(load_stack(path, environ={}).services)


def test_a_host_run_service_reaches_containers_at_their_published_ports(tmp_path: Path) -> None:
    services = _stack(
        tmp_path,
        """
services:
  mcp: {image: m, ports: ["18001:8001"]}
  redis: {image: redis:7, ports: ["127.0.0.1:16379:6379"]}
  pg: {image: postgres:15, network_mode: host}
  kafka: {image: k, ports: ["19092:9092"], hostname: broker}
  api:
    image: a
    environment:
      MCP_URL: http://mcp:8001/v1
      REDIS_URL: "redis://:s3cret-pw@redis/0"
      DATABASE_URL: postgresql://u:pw@pg:5432/app
      BROKERS: broker:9092,elsewhere:9092
      DB_HOST: mcp
      DB_PORT: "8001"
      OTHER: http://example.org:8001
    x-pyairtable: {local: {command: [run], env: {MCP_URL: "http://127.0.0.1:1/"}}}
""",
    )
    reach = {}
    for name, svc in services.items():
        if name != "api":
            for alias in names_of(svc):
                reach[alias] = (name, reach_of(svc, on_host=False))
    rewrite = rewrite_environment(services["api"], reach)
    env = rewrite.environment
    assert env["MCP_URL"] == "http://127.0.0.1:18001/v1"
    assert env["REDIS_URL"] == "redis://:s3cret-pw@127.0.0.1:16379/0"  # the scheme's port
    assert env["DATABASE_URL"] == "postgresql://u:pw@127.0.0.1:5432/app"  # host network
    assert env["BROKERS"] == "127.0.0.1:19092,elsewhere:9092"
    assert (env["DB_HOST"], env["DB_PORT"]) == ("127.0.0.1", "18001")
    assert env["OTHER"] == "http://example.org:8001"  # not a service of the stack
    assert services["api"].local.env["MCP_URL"] == "http://127.0.0.1:1/"
    listed = "\n".join(rewrite.lines)
    assert "MCP_URL: mcp:8001 -> 127.0.0.1:18001" in listed
    assert "s3cret-pw" not in listed and "pw@" not in listed  # hosts and ports only


def test_containers_get_host_entries_for_the_host_run_services_they_reach(
    tmp_path: Path,
) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text("""
services:
  api: {image: a, x-pyairtable: {local: {command: [run]}}}
  web: {image: w, depends_on: [api]}
  worker: {image: w, network_mode: host, environment: {API: "http://api:8000"}}
  lone: {image: w}
""")
    stack = backend_class("placed").adapt(
        load_stack(path, environ={}), Placement(host=("api",), rest="compose")
    )
    assert stack.services["api"].backend == "local"
    assert stack.services["web"].backend == "compose"
    assert stack.services["web"].added_hosts == ("api:host-gateway",)  # a network of its own
    assert stack.services["worker"].added_hosts == ("api:127.0.0.1",)  # the host's network
    assert stack.services["lone"].added_hosts == ()


def test_a_bridge_container_is_created_with_its_host_entry(placed: Project, tmp_path: Path) -> None:
    path = placed.path / "docker-compose.yml"
    path.write_text(f"""
services:
  api: {{image: a, x-pyairtable: {{local: {{command: [run]}}}}}}
  web: {{image: {IMAGE}, network_mode: none, command: [/bin/true], depends_on: [api]}}
""")
    placement = Placement(host=("api",), rest="compose")
    stack = backend_class("placed").adapt(load_stack(path, environ={}), placement)
    options = BackendOptions(run_id=unique_run_id("bridge"), compose_file=path, placement=placement)
    backend = backend_class("placed").create(options)
    try:
        backend.prepare([stack.services["web"]])
        created: list[str] = []

        def made() -> bool:
            out = docker_cli("ps", "-aq", "--filter", "label=com.docker.compose.service=web",
                          "--filter", f"label=com.docker.compose.project=pyairtable-run-{options.run_id}-v2")  # fmt: skip
            created[:] = out.stdout.split()
            return bool(created)

        wait_until(made, timeout=60, what="compose to create the container")
        hosts = docker_cli("inspect", "-f", "{{json .HostConfig.ExtraHosts}}", created[0]).stdout
        assert "api:host-gateway" in hosts
    finally:
        backend.close()
    assert our_containers() == []


def test_a_reference_to_an_unpublished_port_is_an_error_naming_both(tmp_path: Path) -> None:
    services = _stack(
        tmp_path,
        'services: {mcp: {image: m}, api: {image: a, environment: {U: "mcp:8001"}}}\n',
    )
    reach = {"mcp": ("mcp", reach_of(services["mcp"], on_host=False))}
    with pytest.raises(ConfigError, match=r"service 'api' .* reaches 'mcp' at mcp:8001 \(U\)"):
        rewrite_environment(services["api"], reach)
