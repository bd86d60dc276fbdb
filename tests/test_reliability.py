"""Faults produced for real: signals to pytest, a taken port, a service dying mid-run."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Project, marked_processes

Ports = Callable[[int], list[int]]


def one_service(project: Project, port: int, delay: float = 0.0) -> None:
    project.compose(f"""
        services:
          a:
            image: x
            x-pyairtable:
              local: {{command: python -m pytest_pyairtable.standin --name a --port {port} --startup-delay {delay}}}
              probe: {{http: "http://127.0.0.1:{port}/health"}}
          b:
            image: x
            depends_on: {{a: {{condition: service_healthy}}}}
            x-pyairtable:
              local: {{command: ["sleep", "300"]}}
    """)


def run_in_background(project: Project, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, (proc.stdout.read() if proc.stdout else b"").decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def wait_until_gone(timeout: float = 10) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while (left := marked_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_sigkill_of_pytest_leaves_no_service_behind(
    project: Project, free_ports: Ports, no_leaks: Path
) -> None:
    (port,) = free_ports(1)
    one_service(project, port)
    ready = project.path / "ready"
    project.tests(f"""
        import pathlib, time

        def test_hangs(pyairtable_b):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(300)
    """)
    before = set(marked_processes())
    proc = run_in_background(project)
    wait_for(ready, proc)
    assert set(marked_processes()) - before  # the stack and its reaper are running
    proc.kill()
    proc.communicate()
    assert wait_until_gone() == {}  # the reaper ended them, within seconds
    assert [p.name for p in no_leaks.iterdir() if not p.name.endswith("-logs")] == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("when", ["start-up", "tests"])
def test_interrupt_stops_gracefully(
    project: Project, free_ports: Ports, sig: int, when: str
) -> None:
    (port,) = free_ports(1)
    # During start-up: 'a' takes 30 s to listen, so the signal lands while we wait for it.
    one_service(project, port, delay=30 if when == "start-up" else 0)
    project.tests("""
        import time

        def test_hangs(pyairtable_b):
            time.sleep(300)
    """)
    proc = run_in_background(project, "-s")
    log = project.path / "test-output"
    deadline = time.monotonic() + 30
    marker = "a: starting" if when == "start-up" else None
    # wait until the stack exists (its reaper is the first marked process) and, for
    # 'tests', until 'b' runs
    while True:
        running = marked_processes()
        if len(running) >= (2 if marker else 3):
            break
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0].decode()
    log.write_text(out)
    assert proc.returncode == 2, out  # pytest's "interrupted"
    assert wait_until_gone(timeout=2) == {}, out


def test_port_taken_by_another_process(project: Project, free_ports: Ports) -> None:
    (port,) = free_ports(1)
    one_service(project, port)
    project.tests("def test_it(pyairtable_a): pass\n")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = project.run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [f"*service 'a' could not be launched: port {port} is already in use*"]
    )
    assert "a: starting" not in result.stdout.str()  # nothing was started on a taken port


def test_service_dying_mid_session_fails_only_tests_that_need_it(
    project: Project, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    one_service(project, port)
    project.tests("""
        import subprocess, time

        def test_kill_it(pyairtable_a):
            pattern = "standin --name a --port"
            subprocess.run(["pkill", "-KILL", "-f", pattern], check=True)
            while subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0:
                time.sleep(0.01)

        def test_needs_it(pyairtable_a):
            pass

        def test_needs_it_too(pyairtable_a):
            pass

        def test_does_not_need_it():
            pass
    """)
    result = project.run()
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*service 'a' exited with code -9 during the test session*",
            "*reported in full at test_project.py::test_needs_it*",
        ]
    )


def test_stop_is_clean_when_someone_killed_the_reaper(tmp_path: Path, free_ports: Ports) -> None:
    import os

    from pytest_pyairtable.backends.local import LocalBackend
    from pytest_pyairtable.engine.orchestrator import Orchestrator
    from pytest_pyairtable.model.spec import load_stack

    (port,) = free_ports(1)
    path = tmp_path / "docker-compose.yml"
    path.write_text(
        "services:\n  a:\n    image: x\n    x-pyairtable:\n"
        f"      local: {{command: python -m pytest_pyairtable.standin --name a --port {port}}}\n"
        f'      probe: {{tcp: "127.0.0.1:{port}"}}\n'
    )
    orch = Orchestrator(load_stack(path, environ={}), LocalBackend(run_id="reaper-killed"))
    try:
        orch.start()
        orch.wait("a")
        reapers = [
            pid
            for pid in marked_processes()
            if b"pytest_pyairtable.backends.reaper" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(reapers) == 1
        os.kill(reapers[0], signal.SIGKILL)
        time.sleep(0.1)
    finally:
        orch.stop()  # must not raise BrokenPipeError, and must still stop 'a'
    assert orch.runs["a"].running is not None and orch.runs["a"].running.poll() is not None
