"""Faults produced for real: signals to pytest, a taken port, a service dying mid-run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from leakcheck import LeakCheck, kill_own, marked_processes
from stackrun import PYTEST_ARGS

from conftest import Background, Ports, Project, unique_run_id, wait_until
from pytest_pyairtable.backends.markers import MARKER


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


def run_in_background(
    background: Background, project: Project, *args: str
) -> subprocess.Popen[bytes]:
    return background(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, *args],
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


def test_sigkill_of_pytest_leaves_no_service_behind(
    project: Project, free_ports: Ports, no_leaks: LeakCheck, background: Background
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
    proc = run_in_background(background, project)
    wait_for(ready, proc)
    assert no_leaks.service_pids("a") and no_leaks.service_pids("b")
    assert no_leaks.tmpfs_dirs()  # the run's data dir, for the reaper to remove
    proc.kill()
    proc.communicate()
    # the reaper ends the services and removes the run's dirs, within seconds
    wait_until(lambda: not no_leaks.leftovers(), timeout=15, what="the reaper's clean-up")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("when", ["start-up", "tests"])
def test_interrupt_stops_gracefully(
    project: Project,
    free_ports: Ports,
    sig: int,
    when: str,
    no_leaks: LeakCheck,
    background: Background,
) -> None:
    (port,) = free_ports(1)
    # During start-up: 'a' takes 30 s to listen, so the signal lands while we wait for it.
    one_service(project, port, delay=30 if when == "start-up" else 0)
    project.tests("""
        import time

        def test_hangs(pyairtable_b):
            time.sleep(300)
    """)
    proc = run_in_background(background, project, "-s", "--pyairtable-logs-dir", "logs")
    # during start-up: 'a' runs (and waits 30 s before it listens); during the tests:
    # 'b', the last to start, runs
    last = "a" if when == "start-up" else "b"
    wait_until(
        lambda: proc.poll() is not None or no_leaks.service_pids(last), what=f"'{last}' to run"
    )
    assert proc.poll() is None
    if when == "start-up":
        assert not no_leaks.service_pids("b")
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 2, out  # pytest's "interrupted"
    assert no_leaks.leftovers() == [], out  # the run is over when pytest has exited
    logs = project.path / "logs"
    if when == "tests":  # each drained its requests on SIGTERM, not killed
        assert "a: stopped" in (logs / "a.log").read_text()
    else:  # stopped while it waited to listen; its dependent never started
        assert "listening" not in (logs / "a.log").read_text()
        assert not (logs / "b.log").exists()


def test_port_taken_by_another_process(
    project: Project, free_ports: Ports, no_leaks: LeakCheck
) -> None:
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
    (logs,) = no_leaks.root.glob("pyairtable-*-logs")
    assert [p.name for p in logs.iterdir() if p.name != MARKER] == []  # nothing started


def test_service_dying_mid_session_fails_only_tests_that_need_it(
    project: Project, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    one_service(project, port)
    project.tests("""
        import os, select
        from leakcheck import kill_own, marked_processes, service_pids

        def test_kill_it(pyairtable_a):
            root = os.environ["PYAIRTABLE_TMPDIR"]  # this test's: only our 'a' is killed
            (pid,) = service_pids("a", root)
            # A pidfd turns readable once the process has exited (a zombie its parent can
            # reap): /proc looks empty earlier, while it is still dying.
            exited = os.pidfd_open(pid)
            try:
                kill_own(pid, lambda p: p in marked_processes(root))
                assert select.select([exited], [], [], 30)[0], "'a' did not exit"
            finally:
                os.close(exited)

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
    backend = LocalBackend(run_id=unique_run_id("reaper-killed"))
    orch = Orchestrator(load_stack(path, environ={}), backend)
    try:
        orch.start()
        orch.wait("a")
        reapers = [
            pid
            for pid in marked_processes()
            if b"backends/reaperproc.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(reapers) == 1
        kill_own(reapers[0], lambda pid: pid in marked_processes())
        wait_until(lambda: reapers[0] not in marked_processes(), what="the reaper's death")
    finally:
        orch.stop()  # must not raise BrokenPipeError, and must still stop 'a'
    assert orch.runs["a"].running is not None and orch.runs["a"].running.poll() is not None


def test_a_run_ends_only_after_its_reaper(
    monkeypatch: pytest.MonkeyPatch, no_leaks: LeakCheck
) -> None:
    """`done` returns once the reaper has exited; one that cannot exit (stopped here) is
    killed, so the reaper never outlives the run that started it."""
    from pytest_pyairtable.backends.reaper import ReaperClient

    monkeypatch.setattr(ReaperClient, "EXIT_TIMEOUT", 0.5)
    reaper = ReaperClient(unique_run_id("reaper"), os.environ)
    wait_until(marked_processes, what="the reaper to start")
    (pid,) = marked_processes()
    kill_own(pid, lambda p: p in marked_processes(), signal.SIGSTOP)
    reaper.done()
    assert no_leaks.processes() == {}


@pytest.mark.parametrize("as_file", [True, False], ids=["script", "module"])
def test_the_reaper_reaps_once_pytest_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leaks: LeakCheck, as_file: bool
) -> None:
    """End-of-file without `done` (pytest died): the reaper removes the run's dirs. As a
    bare script (the usual start), or as a module where the package is not files on
    disk (a zip): then there is no script to run."""
    from pytest_pyairtable.backends import reaper

    if not as_file:
        monkeypatch.setattr(reaper, "_PROCESS", tmp_path / "in-an-archive" / "reaperproc.py")
    run_dir = tmp_path / "run-dir"
    run_dir.mkdir()
    client = reaper.ReaperClient(unique_run_id("reaper-eof"), os.environ)
    process = client._process
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    # Popen returns once exec has begun (vfork), before the new argv is readable
    wait_until(cmdline.read_bytes, what="the reaper's exec")
    assert (b"reaperproc.py" in cmdline.read_bytes()) is as_file
    client.tell(f"dir {run_dir}")
    assert process.stdin is not None
    process.stdin.close()  # what the kernel does when pytest dies
    assert process.wait(timeout=30) == 0
    assert not run_dir.exists()


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_a_long_stop_says_so_and_kills_what_is_left(
    project: Project, background: Background, no_leaks: LeakCheck, second: int
) -> None:
    """A service that ignores SIGTERM, with an hour to stop: the first Ctrl-C begins the
    graceful stop; the next Ctrl-C or SIGTERM is not swallowed in silence: it is said,
    and what is left is killed at once, as compose's second Ctrl-C forces it."""
    stopping = project.path / "stopping"
    (project.path / "stubborn.sh").write_text(
        f"trap 'touch {stopping}' TERM\necho up\nwhile :; do sleep 0.05; done\n"
    )
    project.compose("""
        services:
          stubborn:
            image: x
            stop_grace_period: 1h
            x-pyairtable:
              local: {command: [sh, stubborn.sh]}
              probe: {log: "^up"}
    """)
    ready = project.path / "ready"
    project.tests(f"""
        import pathlib, time

        def test_hangs(pyairtable_stubborn):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(300)
    """)
    proc = run_in_background(background, project)
    wait_for(ready, proc)
    proc.send_signal(signal.SIGINT)  # the first: stop gracefully, as the file says
    wait_for(stopping, proc)  # it got its SIGTERM, and ignores it
    proc.send_signal(second)
    out = proc.communicate(timeout=60)[0].decode()
    assert "while the stack stops: killed stubborn (SIGKILL)" in out, out
    assert "Traceback" not in out, out
    assert no_leaks.leftovers() == [], out


def test_an_interrupt_during_the_summary_prints_no_traceback(
    project: Project, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    one_service(project, port)
    project.pytester.makeconftest("""
        import os, signal

        def pytest_terminal_summary(terminalreporter):
            os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C while pytest prints its summary
            terminalreporter.write_line("summary went on")
    """)
    project.tests("def test_a(pyairtable_a): pass\n")
    result = project.run_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*summary went on*", "*1 passed*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "KeyboardInterrupt" not in result.stdout.str() + result.stderr.str()
