"""While a boot has launches to come, a keeper keeps the kernel's cgroup moves fast (a
cold move waits ~8 ms for an RCU grace period, on each service's critical path). The
keeper is the run's own, never counted among its services' processes, and never
outlives what needs it: the last launch, the run's end, or the death of its owner.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Ports, unique_run_id, wait_until
from pytest_pyairtable.backends import cgroups
from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.model.spec import load_stack

# A process that starts a run's keeper, says where, and waits to be killed.
OWNER = """
import sys, time
from pytest_pyairtable.backends import cgroups
from pytest_pyairtable.backends.cgroupwarmth import Warmth
run = cgroups.RunCgroup.create(sys.argv[1])
Warmth(run.path).expect(["a"])
print(run.path, flush=True)
time.sleep(300)
"""


def keepers(run: Path) -> list[int]:
    procs = run / ".warmth" / "cgroup.procs"
    return [int(p) for p in procs.read_text().split()] if procs.exists() else []


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    made = LocalBackend(run_id=unique_run_id("warmth"))
    if made.cgroup is None:
        made.close()
        pytest.skip(f"no cgroup for a run here: {made.tracking()}")
    yield made
    made.close()


def test_the_keeper_runs_from_the_boots_prepare_to_its_last_launch(
    backend: LocalBackend, tmp_path: Path, free_ports: Ports
) -> None:
    assert backend.cgroup is not None
    run = backend.cgroup.path
    a, b = free_ports(2)
    path = tmp_path / "docker-compose.yml"
    path.write_text(
        "services:\n"
        + "".join(
            f"  {name}:\n    image: x\n    x-pyairtable:\n      local: {{command: "
            f"python -m pytest_pyairtable.standin --name {name} --port {port}}}\n"
            for name, port in (("a", a), ("b", b))
        )
    )
    stack = load_stack(path, environ={})
    backend.prepare([stack.services["a"], stack.services["b"]])
    wait_until(lambda: len(keepers(run)) == 1, what="the keeper in the run's .warmth cgroup")
    (keeper,) = keepers(run)
    assert keeper not in cgroups.pids_in(run)  # not one of the services' processes
    first = backend.launch(stack.services["a"])
    assert keepers(run) == [keeper]  # a launch is still to come
    second = backend.launch(stack.services["b"])
    wait_until(lambda: not keepers(run), what="the keeper's end after the last launch")
    for running in (first, second):
        running.stop(5)
    backend.close()
    assert not run.exists()  # the .warmth cgroup went with the run's


def test_the_keeper_ends_with_the_process_that_started_it() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, unique_run_id("warmth-owner")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    with owner.stdout:
        line = owner.stdout.readline().strip()
    if not line or not os.path.isdir(line):
        owner.kill()
        owner.wait()
        pytest.skip(f"no cgroup for a run here: {line!r}")
    run = Path(line)
    try:
        wait_until(lambda: len(keepers(run)) == 1, what="the owner's keeper")
        owner.send_signal(signal.SIGKILL)  # no clean-up of its own: its input just closes
        owner.wait()
        wait_until(lambda: not keepers(run), what="the keeper's end with its owner")
    finally:
        cgroups.kill(run)  # only if the keeper outlived its owner: the run is this test's
        wait_until(lambda: not cgroups.pids_in(run) and not keepers(run), what="emptied")
        cgroups.remove(run)
