"""The compose backend against a real Docker engine (skipped, saying why, without one),
with the test image and services of containers.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from containers import IMAGE, ROOT, docker_cli, our_containers, service, standin
from faultcases import FAULT_TESTS
from stackrun import PYTEST_ARGS, cli

from conftest import Background, Ports, Project, engine, wait_until
from pytest_pyairtable.support.errors import PrerequisiteError

# test_backend_compliance.py still imports IMAGE, ROOT, engine and our_containers from
# here; once it takes them from containers.py (and engine from conftest, by name), IMAGE,
# ROOT and engine go from the imports above.
__all__ = ["IMAGE", "ROOT", "engine", "our_containers"]


def test_dag_order_partial_stack_graceful_stop_and_cleanup(
    compose_project: Project, free_ports: Ports
) -> None:
    a, b, c = free_ports(3)
    compose_project.compose(
        "services:"
        + standin("a", a, 0.3)
        + standin("b", b, extra="\n    depends_on: {a: {condition: service_healthy}}")
        + standin("c", c)
    )
    compose_project.tests("""
        import httpx

        def test_b(pyairtable_b):
            assert pyairtable_b.tier == 2
            assert httpx.get(pyairtable_b.url + "/health").json()["status"] == "healthy"
    """)
    result = compose_project.run(
        "--pyairtable-backend",
        "compose",
        "--pyairtable-logs-dir",
        "logs",
        "--pyairtable-timeline",
        "t.json",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*compose backend: *Compose v2*, project pyairtable-*", "*started 2 of 3 services*"]
    )  # c is not needed
    events = json.loads((compose_project.path / "t.json").read_text())["traceEvents"]
    phase = {e["name"]: e for e in events if e["ph"] == "X"}
    assert phase["b starting"]["ts"] >= phase["a starting"]["ts"] + phase["a starting"]["dur"]
    # reverse order on the way down, and graceful: each drained on SIGTERM
    assert phase["b stopping"]["ts"] + phase["b stopping"]["dur"] <= phase["a stopping"]["ts"]
    for name in ("a", "b"):
        assert f"{name}: stopped" in (compose_project.path / "logs" / f"{name}.log").read_text()


def test_dependency_never_healthy_by_engine_healthcheck(
    compose_project: Project, free_ports: Ports
) -> None:
    (b,) = free_ports(1)
    compose_project.compose(
        "services:"
        + service(
            "a",
            """
    command: ["/usr/bin/python3", "-c", "print('a up but broken', flush=True); import time; time.sleep(60)"]
    healthcheck: {test: ["CMD-SHELL", "exit 1"], interval: 100ms, timeout: 1s, retries: 3}""",
        )
        + standin("b", b, extra="\n    depends_on: {a: {condition: service_healthy}}")
    )
    compose_project.tests("def test_b(pyairtable_b): pass\n")
    result = compose_project.run("--pyairtable-backend", "compose")
    result.assert_outcomes(errors=1)
    # Docker's own verdict; where the engine gives none (Podman without systemd), ours,
    # judged at the same pace
    verdict = (
        "*service 'a' was reported unhealthy by the engine's healthcheck*"
        if "Podman" not in result.stdout.str()
        else "*service 'a' failed its healthcheck 3 times in a row, 0.1s apart, which makes "
        "it unhealthy (judged by pyairtable as the engine would*"
    )
    result.stdout.fnmatch_lines([verdict, "*| a up but broken*"])
    assert "b: starting" not in result.stdout.str()


def test_init_container_service_completed_successfully(
    compose_project: Project, free_ports: Ports
) -> None:
    (app,) = free_ports(1)
    compose_project.compose(
        "services:"
        + service(
            "migrate",
            """
    command: ["/bin/sh", "-c", "echo migrated"]""",
        )
        + service(
            "bad-migrate",
            """
    profiles: [bad]
    command: ["/bin/sh", "-c", "echo boom; exit 3"]""",
        )
        + standin(
            "app",
            app,
            extra="\n    depends_on: {migrate: {condition: service_completed_successfully}}",
        )
        + standin(
            "bad-app",
            app,
            extra="\n    profiles: [bad]\n    depends_on: {bad-migrate: {condition: service_completed_successfully}}",
        )
    )
    compose_project.tests("def test_app(pyairtable_app): pass\n")
    compose_project.run("--pyairtable-backend", "compose").assert_outcomes(passed=1)
    compose_project.tests("def test_app(pyairtable_bad_app): pass\n")
    result = compose_project.run("--pyairtable-backend", "compose", "--pyairtable-profile", "bad")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*service 'bad-migrate' exited with code 3*", "*| boom*"])


def test_a_killed_run_leaves_no_container(
    compose_project: Project, free_ports: Ports, background: Background
) -> None:
    (a,) = free_ports(1)
    compose_project.compose("services:" + standin("a", a))
    ready = compose_project.path / "ready"
    compose_project.tests(f"""
        import pathlib, time

        def test_hangs(pyairtable_a):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(300)
    """)
    proc = background(
        [
            sys.executable,
            "-m",
            "pytest",
            *PYTEST_ARGS,
            "--pyairtable-backend",
            "compose",
        ],
        cwd=compose_project.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: ready.exists() or proc.poll() is not None, timeout=60, what="the test")
    assert proc.poll() is None
    assert our_containers(proc.pid)  # running now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the reaper removes them within seconds
    wait_until(lambda: not our_containers(proc.pid), timeout=30, what="the reaper")


def test_compose_prerequisites_are_named(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    project.compose("services: {a: {image: x}}\n")
    project.tests("def test_a(pyairtable_a): pass\n")
    result = project.run("--pyairtable-backend", "compose")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no Docker engine answers (DOCKER_HOST or the current context)*"])


def test_which_compose_runs_is_asked_once_per_state_of_the_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking each candidate its version is a process start before the first container
    can be made (35-45 ms here): the answer is kept until a binary or plugin changes.
    Here the docker CLI is a script that logs each call and has a compose plugin."""
    from pytest_pyairtable.backends.composedetect import detect_compose

    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 0\n')
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))  # no docker-compose binary: the plugin is asked
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def asked() -> list[str]:
        return calls.read_text().splitlines() if calls.exists() else []

    for round_ in range(2):  # as two runs would: only the file remembers
        assert detect_compose() == (
            ["docker", "compose"],
            "Docker Compose v2 (docker compose plugin)",
        )
        assert asked() == ["compose version"], round_
    kept = tmp_path / "cache" / "pytest-pyairtable" / "compose.json"
    assert kept.stat().st_mode & 0o077 == 0
    docker.write_text(docker.read_text() + "# upgraded\n")  # another docker CLI
    detect_compose()
    assert asked() == ["compose version"] * 2
    docker.unlink()  # and none at all: said, not remembered from before
    with pytest.raises(PrerequisiteError, match="no Docker Compose found"):
        detect_compose()


def test_an_unknown_docker_context_is_named_not_replaced_by_another_engine(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("DOCKER_CONTEXT", "staging")
    project.compose("services: {a: {image: x}}\n")
    project.tests("def test_a(pyairtable_a): pass\n")
    result = project.run("--pyairtable-backend", "compose")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*service 'a'*the Docker context 'staging' (DOCKER_CONTEXT) does not exist*"]
    )


def test_faults_on_containers_and_the_stack_healed_after(
    compose_project: Project, free_ports: Ports
) -> None:
    a, b = free_ports(2)
    compose_project.compose(
        "services:"
        + standin("a", a)
        + service(
            "b",
            f"""
    command: ["/usr/bin/python3", "-m", "pytest_pyairtable.standin", "--name", "b", "--port", "{b}", "--upstream", "http://127.0.0.1:{a}"]
    depends_on: {{a: {{condition: service_healthy}}}}
    x-pyairtable: {{probe: {{http: "http://127.0.0.1:{b}/health"}}}}""",
        )
    )
    compose_project.tests(FAULT_TESTS)
    result = compose_project.run("--pyairtable-backend", "compose", "-p", "no:randomly")
    result.assert_outcomes(passed=6)


def test_keep_then_attach_then_down(compose_project: Project, free_ports: Ports) -> None:
    """A kept compose stack outlives its run, a later run attaches to it, and
    `pyairtable down` removes its containers."""
    (a,) = free_ports(1)
    compose_project.compose("services:" + standin("a", a))
    compose = ("--pyairtable-backend", "compose")
    owner = 0  # the pid of the pytest that keeps the stack, in its project's name
    try:
        kept = compose_project.run_subprocess(*compose, "--pyairtable-up", "--pyairtable-keep")
        assert kept.ret == 0, kept.stdout.str()
        kept.stdout.fnmatch_lines_random(["*stack kept running*", "*project pyairtable-run-*"])
        owner = int(kept.stdout.str().split("project pyairtable-run-")[1].split("-")[0])
        (container,) = our_containers(owner)
        running = docker_cli("inspect", "--format", "{{.State.Running}}", container.split()[0])
        assert running.stdout == "true\n"
        compose_project.tests("""
            import httpx

            def test_it(pyairtable_a):
                assert httpx.get(pyairtable_a.url + "/health").status_code == 200
        """)
        attached = compose_project.run(*compose)
        attached.assert_outcomes(passed=1)
        attached.stdout.fnmatch_lines(["*attached to the kept stack (1 services)*"])
        down = cli("down", cwd=compose_project.path)
        assert down.returncode == 0, down.stdout + down.stderr
        assert our_containers(owner) == []
    finally:  # what a failed attempt kept: before free_ports checks the port
        if leftover := our_containers(owner):
            docker_cli("rm", "-f", *[c.split()[0] for c in leftover])
