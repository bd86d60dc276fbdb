"""Nothing escapes: whatever a service starts is stopped by every stop path (the end of
a run, `pyairtable down`, `down --emergency`, the reaper after pytest is SIGKILLed),
also what cleared its environment (``setsid env -i``), left its parent (a double fork)
or daemonised itself (``redis-server --daemonize yes``, which also overwrites the
environment area the run's markers are read from). And a ``CMD-SHELL`` check cut short
at its timeout leaves none of its children behind.

These escapees carry none of the run's markers, so the leak check cannot see them: each
test finds its own by a unique command line (or port) and ends them itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leakcheck import LeakCheck, kill_own
from stackrun import PYTEST_ARGS, cli, listening

from conftest import Ports, Project, unique_run_id, wait_until
from pytest_pyairtable.backends import cgroups
from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.model.probespec import ProbeSpec
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.probes.checks import ProbeContext, ProbeFailed, make_probe


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


class Escapees:
    """Processes of this test's own making, found by tokens in their command lines and
    by the ports they listen on; whatever is left at the end is killed."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.ports: list[int] = []

    def token(self) -> str:
        token = f"987.{secrets.randbelow(10**6):06d}"
        self.tokens.append(token)
        return token

    def _own(self, pid: int) -> bool:
        line = _cmdline(pid)
        by_token = any(f"sleep {t}" in line for t in self.tokens)
        by_port = line.startswith("redis-server") and any(f":{p}" in line for p in self.ports)
        return (by_token or by_port) and _state(pid) not in ("Z", "gone")

    def left(self) -> list[str]:
        pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
        return [f"{pid} {_cmdline(pid)}" for pid in pids if self._own(pid)]

    def kill_all(self) -> None:
        for entry in self.left():
            kill_own(int(entry.split()[0]), self._own)


@pytest.fixture
def cgroups_here() -> None:
    """Where no cgroup can be made, what lost its parent after clearing its environment
    is out of reach (the fallback's documented limit): those cases need one."""
    made = cgroups.RunCgroup.create(unique_run_id("probe"))
    if isinstance(made, str):
        pytest.skip(f"no cgroup for a run here: {made}")
    made.remove()


@pytest.fixture
def escapees() -> Iterator[Escapees]:
    found = Escapees()
    try:
        yield found
    finally:
        left = found.left()
        found.kill_all()
        assert not left, f"escaped every stop: {left}"


def daemons(escapees: Escapees, redis_port: int) -> str:
    """A shell line that leaves three kinds of escapee behind before the service runs."""
    escapees.ports.append(redis_port)
    cleared, orphan = escapees.token(), escapees.token()
    return (
        f"setsid env -i sleep {cleared} & "  # no marker, own session, parent alive
        f"(setsid sh -c 'env -i sleep {orphan} &'); "  # no marker, its parent gone
        f"redis-server --port {redis_port} --bind 127.0.0.1 --daemonize yes --save '' "
        "--appendonly no --dir /tmp >/dev/null; "  # forks, setsid, rewrites its environ
    )


def escaping_project(project: Project, ports: list[int], escapees: Escapees) -> None:
    api, redis_port = ports
    line = daemons(escapees, redis_port)
    standin = f"exec python -m pytest_pyairtable.standin --name api --port {api}"
    project.compose(f"""
        services:
          api:
            image: x
            x-pyairtable:
              local: {{command: ["sh", "-c", "{line}{standin}"]}}
              probe: {{tcp: "127.0.0.1:{api}"}}
    """)


def _gone(escapees: Escapees, redis_port: int) -> bool:
    return not escapees.left() and not listening(redis_port)


def test_the_end_of_a_run_stops_what_escaped_its_group(
    cgroups_here: None, project: Project, free_ports: Ports, escapees: Escapees
) -> None:
    ports = free_ports(2)
    escaping_project(project, ports, escapees)
    project.tests("def test_a(pyairtable_api): pass\n")
    result = project.run_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["process tracking: a cgroup per service (*)"])
    assert _gone(escapees, ports[1]), escapees.left()


@pytest.mark.parametrize("how", [["down"], ["down", "--emergency"]])
def test_down_stops_what_escaped_a_kept_stack(
    cgroups_here: None, project: Project, free_ports: Ports, escapees: Escapees, how: list[str]
) -> None:
    ports = free_ports(2)
    escaping_project(project, ports, escapees)
    project.tests("def test_a(pyairtable_api): pass\n")
    project.run_subprocess("--pyairtable-keep").assert_outcomes(passed=1)
    wait_until(lambda: len(escapees.left()) == 3, 30, "the escapees")
    down = cli(*how, cwd=project.path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert _gone(escapees, ports[1]), escapees.left()


def test_the_reaper_stops_what_escaped_after_pytest_is_killed(
    cgroups_here: None, project: Project, free_ports: Ports, escapees: Escapees, no_leaks: LeakCheck
) -> None:
    ports = free_ports(2)
    escaping_project(project, ports, escapees)
    project.tests("""
        import time
        from pathlib import Path

        def test_hangs(pyairtable_api):
            Path("up").touch()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                time.sleep(0.05)
    """)
    pytest_run = subprocess.Popen(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-q"],
        cwd=project.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until((project.path / "up").exists, 60, "the stack")
        wait_until(lambda: len(escapees.left()) == 3, 30, "the escapees")
    finally:
        pytest_run.send_signal(signal.SIGKILL)
        pytest_run.wait()
    wait_until(lambda: _gone(escapees, ports[1]), 30, "the reaper to end the escapees")
    wait_until(lambda: not no_leaks.leftovers(), 30, "the reaper's clean-up")


def test_what_an_earlier_launch_left_ends_with_the_run(
    cgroups_here: None, project: Project, free_ports: Ports, escapees: Escapees
) -> None:
    """Under a restart policy the first launch leaves a stray that cleared its
    environment and exits; the supervisor starts the service again. The stray is in
    the first launch's cgroup, which no stop of the current launch reaches: the run's
    end does."""
    (api,) = free_ports(1)
    stray = escapees.token()
    standin = f"exec python -m pytest_pyairtable.standin --name api --port {api}"
    first = f"if [ ! -f once ]; then touch once; setsid env -i sleep {stray} & exit 1; fi; "
    project.compose(f"""
        services:
          api:
            image: x
            restart: on-failure
            x-pyairtable:
              local: {{command: ["sh", "-c", "{first}{standin}"]}}
              probe: {{tcp: "127.0.0.1:{api}"}}
    """)
    project.tests("def test_a(pyairtable_api): pass\n")
    project.run_subprocess().assert_outcomes(passed=1)
    assert not escapees.left()


def test_without_cgroups_a_child_that_cleared_its_environment_is_found_by_the_tree(
    project: Project, free_ports: Ports, escapees: Escapees, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback where no cgroup can be made: process groups, markers and the process
    tree (a child whose parent still runs is found, whatever its environment)."""
    (api,) = free_ports(1)
    cleared = escapees.token()
    standin = f"exec python -m pytest_pyairtable.standin --name api --port {api}"
    project.compose(f"""
        services:
          api:
            image: x
            x-pyairtable:
              local: {{command: ["sh", "-c", "setsid env -i sleep {cleared} & {standin}"]}}
              probe: {{tcp: "127.0.0.1:{api}"}}
    """)
    project.tests("def test_a(pyairtable_api): pass\n")
    monkeypatch.setenv("PYAIRTABLE_CGROUP", "0")
    result = project.run_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["process tracking: process groups, run markers and the *"])
    assert not escapees.left()


def test_a_command_check_cut_short_leaves_no_child(escapees: Escapees) -> None:
    token = escapees.token()
    spec = ProbeSpec("command", "", argv=("/bin/sh", "-c", f"sleep {token}; true"))
    probe = make_probe(spec, ProbeContext(attempt_timeout=0.5))
    with pytest.raises(ProbeFailed):
        probe.check()
    wait_until(lambda: not escapees.left(), 10, "the check's child to be ended")
    background = ProbeSpec("command", "", argv=("/bin/sh", "-c", f"sleep {token} >&- 2>&- &"))
    assert make_probe(background, ProbeContext(attempt_timeout=5)).check() == {}
    wait_until(lambda: not escapees.left(), 10, "the check's background child to be ended")


# -- a property: any mix of escape tricks and planted log files -----------------------

TRICKS = {
    "background": "sleep {t} & ",
    "cleared": "env -i sleep {t} & ",
    "session": "setsid sleep {t} & ",
    "cleared session": "setsid env -i sleep {t} & ",
    "orphan": "(setsid sh -c 'env -i sleep {t} &'); ",
    "double fork": "(sh -c 'sleep {t} &' &); ",
    "no input": "nohup env -i sleep {t} </dev/null >/dev/null 2>&1 & ",
}
LOGS = ["absent", "0644", "symlink", "fifo", "hard link"]


def _plant(logs: Path, kind: str, victim: Path) -> None:
    log = logs / "api.log"
    if kind == "0644":
        log.write_text("an earlier run\n")
        log.chmod(0o644)
    elif kind == "symlink":
        log.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(log)
    elif kind == "hard link":
        os.link(victim, log)


@settings(
    max_examples=int(os.environ.get("PYAIRTABLE_ESCAPE_EXAMPLES", "12")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tricks=st.lists(st.sampled_from(sorted(TRICKS)), min_size=1, max_size=4),
    log=st.sampled_from(LOGS),
)
def test_any_escape_and_any_planted_log(
    cgroups_here: None,
    tricks: list[str],
    log: str,
    tmp_path_factory: pytest.TempPathFactory,
    free_ports: Ports,
) -> None:
    """However a service's processes try to get away, and whatever is planted where its
    log goes: after the stop none of them runs, and no file but the log is written."""
    escapees = Escapees()
    try:
        root = tmp_path_factory.mktemp("escape")
        victim = root / "victim.txt"
        victim.write_text("the user's own\n")
        victim.chmod(0o644)
        logs = root / "logs"
        logs.mkdir()
        _plant(logs, log, victim)
        (api,) = free_ports(1)
        line = "".join(TRICKS[t].format(t=escapees.token()) for t in tricks)
        standin = f"exec {sys.executable} -m pytest_pyairtable.standin --name api --port {api}"
        compose = root / "docker-compose.yml"
        compose.write_text(
            "services:\n  api:\n    image: x\n    x-pyairtable:\n"
            f"      local: {{command: ['sh', '-c', {json.dumps(line + standin)}]}}\n"
            f"      probe: {{tcp: '127.0.0.1:{api}'}}\n"
        )
        backend = LocalBackend(run_id=unique_run_id("escape"), logs_dir=logs)
        orch = Orchestrator(load_stack(compose, environ=dict(os.environ)), backend)
        try:
            orch.start()
            with contextlib.suppress(Exception):
                orch.wait("api")
        finally:
            orch.stop()
        assert not escapees.left(), (tricks, escapees.left())
        assert victim.read_text() == "the user's own\n" and victim.stat().st_mode & 0o777 == 0o644
        if log in ("absent", "0644"):
            assert (logs / "api.log").stat().st_mode & 0o777 == 0o600
        else:  # refused, with the reason
            assert orch.runs["api"].error is not None
            assert "api.log" in str(orch.runs["api"].error)
        assert not listening(api)
    finally:
        escapees.kill_all()
