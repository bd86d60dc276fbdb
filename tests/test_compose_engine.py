"""The compose backend on the Engine API, against a real engine: the healthcheck run by
us inside the container (with a shell kept open, or one exec per attempt where the
image has none), compose's own words when it fails whatever its exit code, every
compose file passed to compose, and a death seen on the event stream.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from containers import IMAGE, docker_cli, import_root_image, service

from conftest import Ports, Project, wait_until
from pytest_pyairtable.backends.compose import ComposeBackend
from pytest_pyairtable.backends.composedetect import detect_compose
from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.model.spec import load_stack

NO_SHELL_IMAGE = "pyairtable-test:noshell"

# What the inner test asks the engine: the healthcheck's state as the engine keeps it,
# of its own container (by its project's directory: another suite on the same engine
# runs a service "a" too).
ENGINE_HEALTH = """
import json, os, subprocess

def engine_health(service):
    cid = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.service={service}",
         "--filter", f"label=com.docker.compose.project.working_dir={os.getcwd()}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()[0]
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{json .State}}", cid],
        capture_output=True, text=True, check=True,
    ).stdout
    return cid, json.loads(state).get("Health") or {}
"""


def python_check(port: int) -> str:
    """A healthcheck test for the stand-in on ``port``, as exec-form CMD (no shell)."""
    code = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/health')"
    return f'["CMD", "/usr/bin/python3", "-c", "{code}"]'


def standin_command(name: str, port: int, delay: float) -> str:
    return (
        f'\n    command: ["/usr/bin/python3", "-m", "pytest_pyairtable.standin", "--name", '
        f'"{name}", "--port", "{port}", "--startup-delay", "{delay}"]'
    )


@pytest.fixture(scope="module")
def no_shell_image(engine: str) -> str:
    """An image with no /bin/sh at all: only the loader's directories link into the
    host's /usr (mounted read-only), so python3 runs by its full path, nothing else."""
    if docker_cli("image", "inspect", NO_SHELL_IMAGE).returncode != 0:
        import_root_image(NO_SHELL_IMAGE, links=("lib", "lib64"))
    return NO_SHELL_IMAGE


@pytest.mark.parametrize("image_kind", ["with a shell", "without a shell"])
def test_the_healthcheck_runs_inside_the_container_by_us_not_at_the_engines_interval(
    compose_project: Project,
    free_ports: Ports,
    no_shell_image: str,
    image_kind: str,
) -> None:
    """interval: 300s: the engine's first check would come five minutes after the start.
    The service is ready long before, and the engine has run no check: we ran it."""
    (port,) = free_ports(1)
    image = IMAGE if image_kind == "with a shell" else no_shell_image
    compose_project.compose(
        "services:"
        + service("a", standin_command("a", port, 0.3)).replace(IMAGE, image)
        + f"\n    healthcheck: {{test: {python_check(port)}, interval: 300s, retries: 3}}"
    )
    compose_project.tests(
        ENGINE_HEALTH
        + """
import subprocess

def test_a(pyairtable_a):
    cid, health = engine_health("a")
    assert health["Status"] == "starting" and not health.get("Log"), health
    shell = subprocess.run(["docker", "exec", cid, "/bin/sh", "-c", "true"], capture_output=True)
    print("SHELL", "yes" if shell.returncode == 0 else "no")
"""
    )
    result = compose_project.run("--pyairtable-backend", "compose", "-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SHELL yes" if image_kind == "with a shell" else "*SHELL no"])


def test_a_failing_healthcheck_run_inside_names_its_output(
    compose_project: Project,
    free_ports: Ports,
) -> None:
    (port,) = free_ports(1)
    compose_project.compose(
        "services:"
        + service("a", standin_command("a", port, 0.0))
        + '\n    healthcheck: {test: ["CMD-SHELL", "echo db not migrated >&2; exit 3"],'
        " interval: 300s, timeout: 2s, retries: 1}"
    )
    compose_project.tests("def test_a(pyairtable_a): pass\n")
    result = compose_project.run(
        "--pyairtable-backend", "compose", "--pyairtable-health-check-timeout", "3"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*healthcheck exit code 3: db not migrated*"])


def wrapper_exiting_0(directory: Path) -> str:
    """A compose command that drops compose's exit code, as the PyPI wrapper does."""
    real, _ = detect_compose("docker-compose")
    script = directory / "compose-exits-0"
    script.write_text(f'#!/bin/sh\n"{real[0]}" "$@"\nexit 0\n')
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("case", "said", "fix"),
    [
        # (an image that cannot be pulled is ours to say, before compose: test_registry.py)
        ("cpuset", "*equested CPUs are not available*", "*correct what compose says*"),
        ("project", "*invalid project name*", "*compose project name must be lowercase*"),
    ],
)
def test_compose_failing_is_reported_in_its_own_words_though_its_exit_code_is_0(
    compose_project: Project,
    free_ports: Ports,
    case: str,
    said: str,
    fix: str,
) -> None:
    (port,) = free_ports(1)
    cpuset = '\n    cpuset: "999"' if case == "cpuset" else ""  # the engine refuses it
    compose_project.compose("services:" + service("a", standin_command("a", port, 0.0) + cpuset))
    wrapper = wrapper_exiting_0(compose_project.path)
    project_name = "Not A Valid Name!" if case == "project" else None
    compose_project.pytester.makeconftest(
        "import pytest\n\n"
        "@pytest.fixture(scope='session')\n"
        f"def docker_compose_command():\n    return {wrapper!r}\n"
        + (
            "\n@pytest.fixture(scope='session')\n"
            f"def docker_compose_project_name():\n    return {project_name!r}\n"
            if project_name
            else ""
        )
    )
    compose_project.tests("def test_a(pyairtable_a): pass\n")
    result = compose_project.run("--pyairtable-backend", "compose")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*service 'a'*compose created no container for it*"])
    result.stdout.fnmatch_lines([said])
    result.stdout.fnmatch_lines([fix])


def test_every_compose_file_reaches_compose(
    compose_project: Project,
    free_ports: Ports,
) -> None:
    """The override file beside docker-compose.yml changes what compose creates."""
    (port,) = free_ports(1)
    compose_project.compose(
        "services:"
        + service("a", standin_command("a", port, 0.0))
        + f'\n    x-pyairtable: {{probe: {{http: "http://127.0.0.1:{port}/health"}}}}'
    )
    compose_project.compose(
        "services:\n  a:\n    environment: {FROM_OVERRIDE: 'yes'}\n"
        "    labels: {example.override: 'applied'}\n",
        name="docker-compose.override.yml",
    )
    compose_project.tests("""
        import json, subprocess

        def test_a(pyairtable_a):
            cid = subprocess.run(
                ["docker", "ps", "-q", "--filter", "label=example.override=applied"],
                capture_output=True, text=True, check=True,
            ).stdout.split()
            assert len(cid) == 1
            env = json.loads(subprocess.run(
                ["docker", "inspect", "-f", "{{json .Config.Env}}", cid[0]],
                capture_output=True, text=True, check=True,
            ).stdout)
            assert "FROM_OVERRIDE=yes" in env and "PYTHONPATH=/app" in env
    """)
    result = compose_project.run("--pyairtable-backend", "compose")
    result.assert_outcomes(passed=1)


def test_a_container_death_is_seen_on_the_event_stream(
    compose_project: Project,
    free_ports: Ports,
) -> None:
    """Killed from outside (a crash): the backend's state, fed only by the engine's
    events, says it exited with 137, and the next wait returns at once with that code."""
    (port,) = free_ports(1)
    file = compose_project.compose(
        "services:"
        + service("a", standin_command("a", port, 0.0))
        + f'\n    x-pyairtable: {{probe: {{http: "http://127.0.0.1:{port}/health"}}}}'
    )
    backend = ComposeBackend(
        run_id=f"{os.getpid()}-{os.urandom(3).hex()}",
        compose_file=file,
        compose_command="docker-compose",
    )
    orch = Orchestrator(load_stack(file), backend)
    try:
        orch.start(["a"])
        orch.wait("a")
        running = orch.runs["a"].running
        assert running is not None and backend.states is not None
        cid = running.cid  # type: ignore[attr-defined]
        assert backend.states.exit_code(cid) is None
        killed = subprocess.run(["docker", "kill", cid], capture_output=True, check=False)
        assert killed.returncode == 0, killed.stderr
        assert running.wait(60) == 137
        assert backend.states.known(cid) and backend.states.exit_code(cid) == 137
        assert running.poll() == 137
    finally:
        orch.stop()


@pytest.mark.parametrize("stop_signal", ["SIGUSR1", "USR1", "10"])
def test_the_stacks_end_sends_each_container_its_own_stop_signal(
    compose_project: Project, tmp_path: Path, stop_signal: str
) -> None:
    """At the stack's end a container without a restart policy is signalled by the
    kernel, not through the engine: its STOPSIGNAL however written, as the engine reads
    it. The service ends on SIGUSR1 alone (SIGTERM is ignored: a wrong signal would be
    the SIGKILL after its 5 s grace period, and no goodbye in its log)."""
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "signal.signal(signal.SIGUSR1, lambda *a: (print('got USR1', flush=True), sys.exit(0))); "
        "print('up', flush=True); [time.sleep(0.05) for _ in range(2400)]"
    )
    file = compose_project.compose(
        "services:"
        + service("a", f'\n    command: ["/usr/bin/python3", "-c", "{code}"]')
        + f"\n    stop_signal: '{stop_signal}'"
        + "\n    x-pyairtable: {probe: {log: 'up'}}"
    )
    logs, stack = tmp_path / "logs", load_stack(file)
    backend = ComposeBackend(
        run_id=f"{os.getpid()}-{os.urandom(3).hex()}",
        compose_file=file,
        compose_command="docker-compose",
        logs_dir=logs,
    )
    orch = Orchestrator(stack, backend)
    try:
        orch.start(["a"])
        orch.wait("a")
    finally:
        orch.stop(keep_logs=False)
    assert "got USR1" in (logs / "a.log").read_text()


def test_a_restarted_services_log_has_each_line_once(
    compose_project: Project,
    tmp_path: Path,
) -> None:
    """The log goes on after a restart (a fault's heal) from where it ended: no line of
    the earlier run again (Podman stamps lines in whole seconds: following from the last
    line's stamp repeated that second's lines), none of the new run missing."""
    file = compose_project.compose(
        "services:"
        + service(
            "a",
            '\n    command: ["/bin/sh", "-c", "r=$$(cat /proc/sys/kernel/random/uuid); '
            'i=0; while true; do i=$$((i+1)); echo $$r $$i; sleep 0.05; done"]',
        )
    )
    logs = tmp_path / "logs"
    backend = ComposeBackend(
        run_id=f"{os.getpid()}-{os.urandom(3).hex()}",
        compose_file=file,
        compose_command="docker-compose",
        logs_dir=logs,
    )
    orch = Orchestrator(load_stack(file), backend)
    log = logs / "a.log"

    def runs() -> dict[str, list[int]]:
        lines = [line.split() for line in log.read_text().splitlines() if line.strip()]
        found: dict[str, list[int]] = {}
        for run, number in (line for line in lines if len(line) == 2):
            found.setdefault(run, []).append(int(number))
        return found

    try:
        orch.start(["a"])
        orch.wait("a")
        wait_until(lambda: log.exists() and sum(map(len, runs().values())) >= 10, what="lines")
        orch.restart("a", kill=True)
        wait_until(lambda: len(runs()) == 2 and min(map(len, runs().values())) >= 10, what="more")
    finally:
        orch.stop(keep_logs=False)
    for numbers in runs().values():  # each run's lines once, in order, from its first
        assert numbers == list(range(1, len(numbers) + 1)), numbers


def test_start_interval_reaches_the_engine_or_compose_says_why_not(
    compose_project: Project,
    free_ports: Ports,
    engine: str,
) -> None:
    """start_interval (the checks' cadence during start_period) needs Docker Engine 25+:
    there, the container holds it and the service is ready at our cadence; on an older
    engine compose refuses the file, and its own words are the error."""
    (port,) = free_ports(1)
    compose_project.compose(
        "services:"
        + service("a", standin_command("a", port, 0.2))
        + f"\n    healthcheck: {{test: {python_check(port)}, interval: 300s,"
        " start_period: 60s, start_interval: 1s}"
    )
    compose_project.tests(
        ENGINE_HEALTH
        + """
import json, subprocess

def test_a(pyairtable_a):
    cid, _ = engine_health("a")
    config = json.loads(subprocess.run(
        ["docker", "inspect", "-f", "{{json .Config.Healthcheck}}", cid],
        capture_output=True, text=True, check=True,
    ).stdout)
    assert config["StartInterval"] == 1_000_000_000
"""
    )
    result = compose_project.run("--pyairtable-backend", "compose")
    if int(engine.split(".", maxsplit=1)[0]) >= 25:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(
            ["*compose created no container*start_interval*Docker Engine v25 or later*"]
        )


def test_names_of_images_built_for_a_killed_run_go_with_its_project(engine: str) -> None:
    """A killed run's reaper removes its project: with its containers, the names compose
    gave the images it built for it (``<project>-<service>``), which are the run's own
    (the project's name is). Another run's names stay, and so does the image itself."""
    from pytest_pyairtable.backends.reaper import remove_project

    run = f"{os.getpid()}-{os.urandom(3).hex()}"
    project, other = f"pyairtable-run-{run}-v2", f"pyairtable-run-{run}0-v2"
    names = {"own": f"{project}-api", "another run's": f"{other}-api"}
    for name in names.values():
        assert docker_cli("tag", IMAGE, name).returncode == 0
    try:
        remove_project(project)
        present = {k: docker_cli("image", "inspect", n).returncode == 0 for k, n in names.items()}
        assert present == {"own": False, "another run's": True}
        assert docker_cli("image", "inspect", IMAGE).returncode == 0  # the image itself stays
    finally:
        docker_cli("rmi", *names.values())
