"""A launch's cgroup is empty until its shell joins it, and others remove empty cgroups:
every run's start sweeps those of runs whose owner is gone, and a kept stack's owner
(`pyairtable up --detach`) is gone by design while `pyairtable restart` launches into
it. The sweep must leave a cgroup a launch is joining alone; where a launch cannot join
(a clean-up that waits for nothing), it runs tracked by its process group instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from stackrun import cli, listening, record_of, standin_service, until

from conftest import Ports, Project, unique_run_id
from pytest_pyairtable.backends import cgroups
from pytest_pyairtable.backends.process import LocalProcess, proc_start_time

SLEEP = ["sleep", "300"]  # stopped by the test itself
# Another process removing a run's empty cgroups over and over, as a run's end or a
# stop does (the same code: it imports this checkout, as the test does).
REMOVER = """
import pathlib, sys
from pytest_pyairtable.backends import cgroups
path, ready, stop = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
ready.touch()
while not stop.exists():
    cgroups.remove(path)
"""


@pytest.fixture
def runs_place() -> Path:
    """Where a run's cgroup goes here (beside this process's own); skips without one."""
    made = cgroups.RunCgroup.create(unique_run_id("probe"))
    if isinstance(made, str):
        pytest.skip(f"no cgroup for a run here: {made}")
    made.remove()
    return made.path.parent


@pytest.fixture
def ownerless_run(runs_place: Path) -> Iterator[cgroups.RunCgroup]:
    """A run's cgroup whose owner has exited, as a kept stack's is once `up --detach`
    returns; what the test leaves in it is ended after."""
    owner = subprocess.Popen(["true"])
    ticks = proc_start_time(owner.pid)  # read before it is reaped
    owner.wait()
    path = runs_place / f"{cgroups.PREFIX}{owner.pid}.{ticks}-{unique_run_id('kept')}"
    path.mkdir()
    run = cgroups.RunCgroup(path)
    try:
        yield run
    finally:
        run.end()
        assert not path.exists()


def launch(cgroup: cgroups.ServiceCgroup, tmp_path: Path) -> LocalProcess:
    log = tmp_path / "web.log"
    return LocalProcess(
        "web", SLEEP, env=dict(os.environ), cwd=tmp_path, log_path=log, cgroup=cgroup
    )


def test_another_runs_sweep_while_a_launch_joins_leaves_its_cgroup_alone(
    ownerless_run: cgroups.RunCgroup, tmp_path: Path
) -> None:
    made = ownerless_run.service("web")
    assert isinstance(made, cgroups.ServiceCgroup), made
    # Another run starts now, between the cgroup's making and its launch's joining: its
    # owner is gone, and the cgroup is still empty.
    cgroups.sweep()
    process = launch(made, tmp_path)
    try:
        assert process.target.cgroup == str(made.path)  # (asked, it settles the join)
        log = (tmp_path / "web.log").read_text()
        assert process.pid in cgroups.pids_in(made.path), log
        assert process.poll() is None, log
    finally:
        process.kill()
    assert not made.path.exists()  # removed with its stop


def test_launches_while_another_process_removes_the_runs_empty_cgroups_all_join(
    runs_place: Path, tmp_path: Path
) -> None:
    run = cgroups.RunCgroup.create(unique_run_id("raced"))
    assert isinstance(run, cgroups.RunCgroup), run
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    remover = subprocess.Popen([sys.executable, "-c", REMOVER, str(run.path), ready, stop])
    launched: list[LocalProcess] = []
    try:
        until(lambda: ready.exists() or remover.poll() is not None, what="the remover")
        assert remover.poll() is None
        for _ in range(20):
            made = run.service("web")
            assert isinstance(made, cgroups.ServiceCgroup), made
            launched.append(launch(made, tmp_path))
            process = launched[-1]
            problem = process.cgroup_problem  # (asked, it settles the join)
            log = (tmp_path / "web.log").read_text()
            assert process.poll() is None, log  # (it exited 125, "echo: I/O error")
            assert problem is None, log
            assert process.pid in cgroups.pids_in(made.path), log
    finally:
        stop.touch()
        try:
            remover.wait(30)
        except subprocess.TimeoutExpired:
            remover.kill()
            remover.wait()
        for process in launched:
            process.kill()
        run.end()
    assert remover.returncode == 0
    assert not run.path.exists()


def test_a_launch_whose_cgroup_went_before_it_joined_runs_tracked_by_its_group(
    runs_place: Path, tmp_path: Path
) -> None:
    run = cgroups.RunCgroup.create(unique_run_id("gone"))
    assert isinstance(run, cgroups.RunCgroup), run
    try:
        made = run.service("web")
        assert isinstance(made, cgroups.ServiceCgroup), made
        os.rmdir(made.path)  # a clean-up that takes no lock (an earlier version's sweep)
        process = launch(made, tmp_path)
        try:
            assert process.cgroup_problem is not None
            assert "removed before the launch joined it" in process.cgroup_problem
            assert process.target.cgroup is None
            assert process.poll() is None  # it runs all the same
            assert process.pid in process.pids()
            assert "I/O error" not in (tmp_path / "web.log").read_text()
        finally:
            process.stop(signal.SIGTERM, 5)
        assert process.poll() is not None and not process.pids()
    finally:
        run.end()


def test_no_launch_cgroup_where_the_runs_cgroup_cannot_be_made_again(runs_place: Path) -> None:
    run = cgroups.RunCgroup(runs_place / f"gone-{unique_run_id('x')}" / "run")
    made = run.service("web")
    assert isinstance(made, str) and "No such file or directory" in made, made


def test_restart_in_a_kept_stack_whose_runs_cgroup_was_swept(
    runs_place: Path, project: Project, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    project.compose("services:\n" + standin_service("web", port))
    assert cli("up", "--detach", cwd=project.path).returncode == 0
    try:
        record = json.loads(record_of(project.path).read_text())
        state = record["services"]["web"]["state"]
        run_path = Path(state["cgroup"]).parent
        os.killpg(state["pgid"], signal.SIGKILL)  # the group our `up` started
        until(lambda: not listening(port), what="web gone")
        until(lambda: not cgroups.pids_in(run_path), what="web's cgroup empty")
        cgroups.sweep()  # another run starts: the whole run's cgroup is empty, its owner gone
        assert not run_path.exists()
        healed = cli("restart", "web", cwd=project.path)
        assert healed.returncode == 0, healed.stdout + healed.stderr
        again = json.loads(record_of(project.path).read_text())["services"]["web"]["state"]
        assert Path(again["cgroup"]).parent == run_path
        assert again["pgid"] in cgroups.pids_in(again["cgroup"])
    finally:
        assert cli("down", cwd=project.path).returncode == 0
    assert not listening(port)
