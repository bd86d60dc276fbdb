"""Clean-up touches only what this stack made: two projects side by side on one machine
(one temp dir, one /dev/shm), and a project and its copy. Failed runs, kept stacks,
`down`, `down --volumes`, the stale sweep and SIGKILLed runs in one never stop a
process or remove a file of the other; a kept stack whose record was deleted keeps its
data while it runs; `down` during a boot cancels it. Real processes, real servers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import psycopg
import pytest
import redis
from containers import docker_cli, service
from leakcheck import LeakCheck, kill_own
from stackrun import PYTEST_ARGS, cli, record_of, until

from conftest import Background, Ports
from pytest_pyairtable.backends.procfs import is_running, proc_start_time

REDIS_APP = """
services:
  cache:
    image: redis:7
    command: ["redis-server", "--appendonly", "yes"]
    ports: ["${CACHE_PORT:?set CACHE_PORT}:6379"]
  app:
    image: example/app
    depends_on: [cache]
    environment: {FAIL: "${FAIL:-}"}
    x-pyairtable:
      local:
        command: ["sh", "-c", "test -z \\"$$FAIL\\" || exit 1; exec python -m pytest_pyairtable.standin --name app --port ${APP_PORT:?set APP_PORT}"]
      probe: {http: "http://127.0.0.1:${APP_PORT}/health"}
"""

TESTS = """
import os, pathlib, time
import redis

def test_write(pyairtable_app, pyairtable_cache):
    redis.Redis.from_url(pyairtable_cache.url).set("written", os.environ["WRITE"])

def test_hang(pyairtable_app, pyairtable_cache):
    pathlib.Path(os.environ["READY_FILE"]).touch()
    time.sleep(300)
"""


class Stack:
    """A project directory of its own, run as a developer would: pytest and the CLI, on
    ports chosen per run (a kept stack holds its own while others run)."""

    def __init__(self, path: Path, free_ports: Ports, compose: str = REDIS_APP) -> None:
        path.mkdir()
        (path / "docker-compose.yml").write_text(textwrap.dedent(compose))
        (path / "test_stack.py").write_text(textwrap.dedent(TESTS))
        self.path = path
        self.free_ports = free_ports

    def env(self, *, fail: bool = False, **more: str) -> dict[str, str]:
        cache, app = self.free_ports(2)
        ready = str(self.path / "ready")
        base = {"CACHE_PORT": str(cache), "APP_PORT": str(app), "READY_FILE": ready}
        return {**os.environ, **base, "WRITE": "kept", "FAIL": "1" if fail else "", **more}

    def pytest(self, *args: str, fail: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-k", "not hang", *args],
            cwd=self.path,
            env=self.env(fail=fail),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return cli(*args, cwd=cwd or self.path)


def run_dirs(check: LeakCheck) -> set[Path]:
    """Every directory runs made in this test's temp root, and their data dirs on tmpfs."""
    return {*check.root.glob("pyairtable-*"), *check.tmpfs_dirs()}


def every_path(tops: Iterable[Path]) -> set[Path]:
    found = set()
    for top in tops:
        found.add(top)
        found.update(top.rglob("*"))
    return found


def started_processes(check: LeakCheck) -> dict[int, int]:
    """PID -> start ticks of every live process a stack of this test started."""
    return {pid: ticks for pid in check.processes() if (ticks := proc_start_time(pid)) is not None}


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def reapers_of(pytest_pid: int) -> list[int]:
    """The reaper a pytest started (its child, running reaperproc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and parent_of(int(entry.name)) == pytest_pid:
            try:
                if b"reaperproc" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def kill_everything_of_a_run(
    stack: Stack, background: Background, check: LeakCheck, *args: str
) -> None:
    """A run killed with all it started (the OOM killer, a CI runner's kill of the whole
    job): its reaper, pytest and its services are SIGKILLed; its directories remain."""
    ready = stack.path / "ready"
    ready.unlink(missing_ok=True)
    before = set(check.processes())
    proc = background(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-k", "hang", *args],
        cwd=stack.path,
        env=stack.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    until(lambda: ready.exists() or proc.poll() is not None, 120, "the run's services")
    assert proc.poll() is None
    (reaper,) = reapers_of(proc.pid)
    kill_own(reaper, lambda pid: parent_of(pid) == proc.pid)
    proc.kill()
    proc.wait()
    for pid in set(check.processes()) - before:
        kill_own(pid, check.is_own)
    until(lambda: set(check.processes()) <= before, 30, "the killed run's processes to go")


class Other:
    """What the other project has on the machine: every path and every process."""

    def __init__(self, dirs: set[Path], project: Path, processes: dict[int, int]) -> None:
        self.paths = every_path({*dirs, project})
        self.processes = processes
        assert dirs and processes

    def intact(self, after: str) -> None:
        gone = sorted(str(p) for p in self.paths if not os.path.lexists(p))
        assert not gone, f"{after} removed the other project's {gone[:8]}"
        dead = [pid for pid, ticks in self.processes.items() if not is_running(pid, ticks)]
        assert not dead, f"{after} ended the other project's processes {dead}"


def kept_logs(check: LeakCheck, before: set[Path]) -> list[Path]:
    return sorted(p for p in run_dirs(check) - before if p.name.endswith("-logs"))


def test_two_projects_side_by_side_clean_up_only_their_own(
    tmp_path: Path, free_ports: Ports, no_leaks: LeakCheck, background: Background
) -> None:
    mine, theirs = Stack(tmp_path / "mine", free_ports), Stack(tmp_path / "theirs", free_ports)

    # Theirs: a failed run (its logs kept), a kept stack, and a run killed with everything
    # it started (its leftovers wait for their own project's next run).
    failed = theirs.pytest(fail=True)
    assert failed.returncode == 1, failed.stdout
    kept = theirs.pytest("--pyairtable-keep")
    assert kept.returncode == 0, kept.stdout
    kept_processes = started_processes(no_leaks)
    kill_everything_of_a_run(theirs, background, no_leaks)
    other = Other(run_dirs(no_leaks), theirs.path, kept_processes)
    assert len(kept_logs(no_leaks, set())) == 3  # failed, kept, killed

    try:
        # Mine: a failed run keeps its logs and says where; the next good run removes them.
        before = run_dirs(no_leaks)
        done = mine.pytest(fail=True)
        assert done.returncode == 1, done.stdout
        other.intact("a failed run")
        (logs,) = kept_logs(no_leaks, before)
        assert f"the logs of this run are kept in {logs}" in done.stdout
        assert (logs / "app.log").exists()
        done = mine.pytest()
        assert done.returncode == 0, done.stdout
        other.intact("a successful run")
        assert not logs.exists(), "the next successful run removes a failed run's logs"

        # Another failed run: `down` with nothing running keeps its logs; --volumes not.
        before = run_dirs(no_leaks)
        assert mine.pytest(fail=True).returncode == 1
        (logs,) = kept_logs(no_leaks, before)
        down = mine.cli("down")
        assert down.returncode == 0 and "nothing to stop" in down.stdout, down.stdout
        assert logs.exists()
        other.intact("`down` with nothing running")
        down = mine.cli("down", "--volumes")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "removed logs and leftovers of earlier runs of this stack: 1 directory" in (
            down.stdout
        )
        assert not logs.exists()
        other.intact("`down --volumes` with nothing running")

        # A kept stack, `down` (its logs go with it), `down --volumes`.
        for how in ([], ["--volumes"]):
            before = run_dirs(no_leaks)
            assert mine.pytest("--pyairtable-keep").returncode == 0
            down = mine.cli("down", *how)
            assert down.returncode == 0, down.stdout + down.stderr
            assert run_dirs(no_leaks) - before == set(), "a clean `down` leaves nothing"
            other.intact(f"`down {' '.join(how)}` of a kept stack")

        # A run SIGKILLed: its reaper ends it; nothing of theirs goes with it.
        ready = mine.path / "ready"
        proc = background(
            [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-k", "hang"],
            cwd=mine.path,
            env=mine.env(),
        )
        until(lambda: ready.exists() or proc.poll() is not None, 120, "the run's services")
        proc.kill()
        proc.wait()
        until(lambda: set(no_leaks.processes()) <= set(kept_processes), 30, "the reaper")
        other.intact("a SIGKILLed run and its reaper")
    finally:
        # Their own `down --volumes` ends their kept stack and removes all they left.
        down = theirs.cli("down", "--volumes")
    assert down.returncode == 0, down.stdout + down.stderr
    assert no_leaks.processes() == {}
    assert run_dirs(no_leaks) == set(), "their leftovers are theirs to remove"


POSTGRES_APP = """
services:
  db:
    image: postgres:16
    environment: {POSTGRES_USER: dev, POSTGRES_PASSWORD: dev-pw-7, POSTGRES_DB: notes}
    ports: ["${DB_PORT:?set DB_PORT}:5432"]
"""

NOTES = """
import os, pathlib, time, psycopg

def test_write(pyairtable_db):
    with psycopg.connect(pyairtable_db.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (body text)")
        conn.execute("INSERT INTO notes VALUES (%s)", (os.environ["WRITE"],))

def test_hang(pyairtable_db):
    pathlib.Path(os.environ["READY_FILE"]).touch()
    time.sleep(300)
"""


def notes_env(where: Path, port: int) -> dict[str, str]:
    ready = str(where / "ready")
    return {**os.environ, "DB_PORT": str(port), "WRITE": where.name, "READY_FILE": ready}


def notes_run(where: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-k", "not hang", *args],
        cwd=where,
        env=notes_env(where, port),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_copy_of_the_project_never_acts_on_the_original_stack(
    tmp_path: Path, free_ports: Ports, no_leaks: LeakCheck, background: Background
) -> None:
    original = tmp_path / "project"
    original.mkdir()
    (original / "docker-compose.yml").write_text(POSTGRES_APP)
    (original / "test_notes.py").write_text(textwrap.dedent(NOTES))
    (db_port,) = free_ports(1)
    kept = notes_run(original, db_port, "--pyairtable-keep")
    assert kept.returncode == 0, kept.stdout
    other = Other(run_dirs(no_leaks), original, started_processes(no_leaks))
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
    assert record_of(copy).exists()
    url = f"postgresql://dev:dev-pw-7@127.0.0.1:{db_port}/notes"
    try:
        for command in (["down"], ["down", "--volumes"], ["down", "--emergency"]):
            done = cli(*command, cwd=copy)
            assert done.returncode == 0, done.stdout + done.stderr
            assert "nothing to stop here" in done.stdout and str(original) in done.stdout
            other.intact(f"`{' '.join(command)}` in a copy")
        for command in (["status"], ["restart"]):
            done = cli(*command, cwd=copy)
            assert done.returncode == 2 and "a copy never acts on" in done.stderr, done.stderr
            other.intact(f"`{command[0]}` in a copy")

        # A run in the copy, as copied (the same port): it does not attach to the
        # original's stack (its tests would write there); its own cannot bind the port.
        failed = notes_run(copy, db_port)
        assert failed.returncode != 0, failed.stdout
        assert "not attaching to a kept stack" in failed.stdout, failed.stdout
        assert f"port {db_port} is already in use" in failed.stdout, failed.stdout
        other.intact("a failed run in the copy")

        # A run in the copy SIGKILLed: its reaper ends it, and nothing of the original.
        (copy_port,) = free_ports(1)
        proc = background(
            [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-k", "hang"],
            cwd=copy,
            env=notes_env(copy, copy_port),
        )
        until(lambda: (copy / "ready").exists() or proc.poll() is not None, 120, "the run")
        proc.kill()
        proc.wait()
        until(lambda: set(no_leaks.processes()) <= set(other.processes), 30, "the reaper")
        other.intact("a SIGKILLed run in the copy")

        # The copy's own kept stack (its own port): its record replaces the copied one,
        # and its `down` stops that one.
        mine = notes_run(copy, copy_port, "--pyairtable-keep")
        assert mine.returncode == 0, mine.stdout
        assert "not attaching to a kept stack" in mine.stdout
        other.intact("a kept run in the copy")
        done = cli("down", cwd=copy)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "nothing to stop" not in done.stdout
        other.intact("the copy's `down` of its own stack")
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT body FROM notes").fetchall() == [("project",)]
    finally:
        down = cli("down", cwd=original)
    assert down.returncode == 0, down.stdout + down.stderr
    assert no_leaks.processes() == {}


REDIS_ONLY = """
services:
  cache:
    image: redis:7
    command: ["redis-server", "--appendonly", "yes"]
    ports: ["${CACHE_PORT:?set CACHE_PORT}:6379"]
"""

REDIS_TESTS = """
import os, redis

def test_write(pyairtable_cache):
    redis.Redis.from_url(pyairtable_cache.url).set("written", os.environ["WRITE"])
"""


def test_a_kept_stack_whose_record_was_deleted_keeps_its_data_while_it_runs(
    tmp_path: Path, free_ports: Ports, no_leaks: LeakCheck
) -> None:
    """redis-server rewrites its environment's memory: its run id cannot be read there,
    and its data dir must stay all the same (it works in it)."""
    stack = Stack(tmp_path / "project", free_ports, REDIS_ONLY)
    (stack.path / "test_stack.py").write_text(textwrap.dedent(REDIS_TESTS))
    elsewhere = Stack(tmp_path / "elsewhere", free_ports, REDIS_ONLY)
    (elsewhere.path / "test_stack.py").write_text(textwrap.dedent(REDIS_TESTS))
    env = stack.env()
    kept = subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, "--pyairtable-keep"],
        cwd=stack.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert kept.returncode == 0, kept.stdout
    processes = started_processes(no_leaks)
    (server,) = processes
    assert b"PYAIRTABLE_RUN_ID" not in Path(f"/proc/{server}/environ").read_bytes()
    kept_dirs = run_dirs(no_leaks)
    other = Other(kept_dirs, stack.path, processes)
    shutil.rmtree(stack.path / ".pyairtable")  # as `git clean -fdX` does
    other.paths = every_path(kept_dirs)
    cache = redis.Redis(port=int(env["CACHE_PORT"]))
    try:
        for run in (stack, elsewhere, stack):  # its own project's sweep too
            done = run.pytest()
            assert done.returncode == 0, done.stdout
            other.intact("a later run")
        down = stack.cli("down", "--volumes")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "has no record any more" in down.stdout, down.stdout
        other.intact("`down --volumes`")
        assert cache.get("written") == b"kept"
    finally:
        cache.close()
        for pid in processes:  # its record is gone: ended by hand, as the message says
            kill_own(pid, no_leaks.is_own, signal.SIGTERM)
        until(lambda: not no_leaks.processes(), 30, "the orphaned server to stop")
    # Once nothing of it runs, its own project's clean-up removes what it left.
    down = stack.cli("down", "--volumes")
    assert down.returncode == 0, down.stdout + down.stderr
    assert run_dirs(no_leaks) == set(), down.stdout


SLOW = """
services:
  first:
    image: x
    x-pyairtable:
      local: {{command: python -m pytest_pyairtable.standin --name first --port {first}}}
      probe: {{tcp: "127.0.0.1:{first}"}}
  slow:
    image: x
    depends_on: [first]
    x-pyairtable:
      local: {{command: python -m pytest_pyairtable.standin --name slow --port {slow} --startup-delay 120}}
      probe: {{tcp: "127.0.0.1:{slow}"}}
"""


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detach"])
def test_down_during_a_boot_cancels_it(
    tmp_path: Path,
    free_ports: Ports,
    no_leaks: LeakCheck,
    background: Background,
    detach: bool,
) -> None:
    first, slow = free_ports(2)
    project = tmp_path / "project"
    project.mkdir()
    (project / "docker-compose.yml").write_text(
        textwrap.dedent(SLOW.format(first=first, slow=slow))
    )
    out = tmp_path / "up.out"
    with open(out, "w") as sink:
        up = background(
            [sys.executable, "-m", "pytest_pyairtable.cli", "up", *(["-d"] if detach else [])],
            cwd=project,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    until(lambda: no_leaks.service_pids("slow") or up.poll() is not None, 60, "the boot")
    assert up.poll() is None, out.read_text()
    status = cli("status", cwd=project)
    assert status.returncode == 2 and "is still starting" in status.stderr, status.stderr
    down = cli("down", cwd=project)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "still starting" in down.stdout and "boot cancelled" in down.stdout, down.stdout
    assert up.poll() is not None, "down returned while the boot went on"
    assert no_leaks.processes() == {}
    assert not record_of(project).exists()
    assert cli("status", cwd=project).returncode == 2


WEB = (
    "services:"
    + service(
        "web",
        """
    command: ["/usr/bin/python3", "-m", "pytest_pyairtable.standin", "--name", "web", "--port", "${WEB_PORT:?set WEB_PORT}"]
    x-pyairtable: {probe: {http: "http://127.0.0.1:${WEB_PORT}/health"}}""",
    )
    + "\n"
)

WEB_TESTS = """
import os, pathlib, time

def test_web(pyairtable_web):
    pass

def test_hang(pyairtable_web):
    pathlib.Path(os.environ["READY_FILE"]).touch()
    time.sleep(300)
"""


class ComposeStack(Stack):
    def __init__(self, path: Path, free_ports: Ports) -> None:
        super().__init__(path, free_ports, WEB)
        (path / "test_stack.py").write_text(textwrap.dedent(WEB_TESTS))
        (path / "pytest.ini").write_text("[pytest]\n")

    def env(self, *, fail: bool = False, **more: str) -> dict[str, str]:
        (port,) = self.free_ports(1)
        return {**os.environ, "WEB_PORT": str(port), "READY_FILE": str(self.path / "ready")}

    def pytest(self, *args: str, fail: bool = False) -> subprocess.CompletedProcess[str]:
        return super().pytest("--pyairtable-backend", "compose", *args)


def compose_projects(prefix: str) -> dict[str, set[str]]:
    """Compose project -> its containers' ids, for the projects named ``prefix...``."""
    listed = docker_cli(
        "ps", "-a", "--filter", "label=com.docker.compose.project",
        "--format", '{{.ID}} {{.Label "com.docker.compose.project"}}',
    ).stdout  # fmt: skip
    found: dict[str, set[str]] = {}
    for line in listed.splitlines():
        cid, _, project = line.partition(" ")
        if project.startswith(prefix):
            found.setdefault(project, set()).add(cid)
    return found


def running(cids: Iterable[str]) -> set[str]:
    listed = docker_cli("ps", "-q", "--no-trunc", *(f"--filter=id={c}" for c in cids)).stdout
    return {c for c in cids if any(line.startswith(c) for line in listed.split())}


def test_compose_projects_side_by_side_and_a_copy(
    engine: str, tmp_path: Path, free_ports: Ports, no_leaks: LeakCheck, background: Background
) -> None:
    mine = ComposeStack(tmp_path / "mine", free_ports)
    theirs = ComposeStack(tmp_path / "theirs", free_ports)
    kept = theirs.pytest("--pyairtable-keep", "-k", "not hang")
    assert kept.returncode == 0, kept.stdout
    kept_project = json.loads(record_of(theirs.path).read_text())["backend_state"]["project"]
    ready = theirs.path / "ready"
    proc = background(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, "--pyairtable-backend", "compose", "-k", "hang"],
        cwd=theirs.path, env=theirs.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        until(lambda: ready.exists() or proc.poll() is not None, 180, "the killed run's stack")
        assert proc.poll() is None
        (reaper,) = reapers_of(proc.pid)
        kill_own(reaper, lambda pid: parent_of(pid) == proc.pid)  # killed with its reaper
        proc.kill()
        proc.wait()
        (killed_project,) = compose_projects(f"pyairtable-run-{proc.pid}-")
        theirs_containers = compose_projects(kept_project) | compose_projects(killed_project)
        ids = {c for cids in theirs_containers.values() for c in cids}
        assert len(theirs_containers) == 2 and running(ids) == ids
        files = every_path({*run_dirs(no_leaks), theirs.path})

        def intact(after: str) -> None:
            assert compose_projects(kept_project) | compose_projects(killed_project) == (
                theirs_containers
            ), f"{after} removed the other project's containers"
            assert running(ids) == ids, f"{after} stopped the other project's containers"
            gone = sorted(str(p) for p in files if not os.path.lexists(p))
            assert not gone, f"{after} removed the other project's {gone[:8]}"

        done = mine.pytest("-k", "not hang")
        assert done.returncode == 0, done.stdout
        intact("a run of another project")
        mine_ready = mine.path / "ready"
        killed = background(
            [sys.executable, "-m", "pytest", *PYTEST_ARGS, "--pyairtable-backend", "compose", "-k", "hang"],
            cwd=mine.path, env=mine.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        until(lambda: mine_ready.exists() or killed.poll() is not None, 180, "its stack")
        killed.kill()
        killed.wait()
        until(lambda: not compose_projects(f"pyairtable-run-{killed.pid}-"), 60, "the reaper")
        intact("a SIGKILLed run of another project")
        for command in (["down"], ["down", "--volumes"]):
            done = mine.cli(*command)
            assert done.returncode == 0, done.stdout + done.stderr
            intact(f"`{' '.join(command)}` in another project")
        copy = tmp_path / "copy"
        subprocess.run(["cp", "-a", str(theirs.path), str(copy)], check=True)
        for command in (["down"], ["down", "--volumes"]):
            done = cli(*command, cwd=copy)
            assert done.returncode == 0 and "nothing to stop here" in done.stdout, done.stdout
            intact(f"`{' '.join(command)}` in a copy")

        # Their record deleted: their own next run removes what the killed run left, and
        # not the kept stack, which still runs.
        shutil.rmtree(theirs.path / ".pyairtable")
        kept_ids = theirs_containers[kept_project]
        for _ in range(2):  # the first run's sweep must not lose the proof the next needs
            done = theirs.pytest("-k", "not hang")
            assert done.returncode == 0, done.stdout
            assert compose_projects(killed_project) == {}, "a killed run's containers are stale"
            assert compose_projects(kept_project) == {kept_project: kept_ids}
            assert running(kept_ids) == kept_ids
    finally:
        for project in (
            *compose_projects(kept_project),
            *compose_projects(f"pyairtable-run-{proc.pid}-"),
        ):
            docker_cli("rm", "-f", *compose_projects(project)[project])  # ours: this test's
    down = theirs.cli("down", "--volumes")
    assert down.returncode == 0, down.stdout + down.stderr
    assert run_dirs(no_leaks) == set(), down.stdout


def test_down_keeps_the_logs_of_a_stack_whose_service_died_and_says_where(
    tmp_path: Path, free_ports: Ports, no_leaks: LeakCheck
) -> None:
    a, b = free_ports(2)
    project = tmp_path / "project"
    project.mkdir()
    (project / "docker-compose.yml").write_text(
        "services:\n"
        + "".join(
            f"  {name}:\n    image: x\n    x-pyairtable:\n"
            f"      local: {{command: python -m pytest_pyairtable.standin --name {name} "
            f"--port {port}}}\n"
            f'      probe: {{tcp: "127.0.0.1:{port}"}}\n'
            for name, port in (("a", a), ("b", b))
        )
    )
    up = cli("up", "--detach", cwd=project)
    assert up.returncode == 0, up.stdout + up.stderr
    (pid,) = no_leaks.service_pids("b")
    kill_own(pid, no_leaks.is_own)
    until(lambda: not no_leaks.service_pids("b"), 30, "'b' to die")
    down = cli("down", cwd=project)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "b had exited before the stop" in down.stdout, down.stdout
    (logs,) = run_dirs(no_leaks)
    assert f"the logs of this run are kept in {logs}" in down.stdout
    assert "b: listening" in (logs / "b.log").read_text()
    down = cli("down", "--volumes", cwd=project)
    assert down.returncode == 0, down.stdout + down.stderr
    assert run_dirs(no_leaks) == set()


def test_a_compose_run_that_cannot_start_leaves_no_directory(
    tmp_path: Path, no_leaks: LeakCheck
) -> None:
    """No compose on the machine: the run fails before any reaper could learn of a
    directory, so it makes none (one made first was left for a later run to sweep)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "docker-compose.yml").write_text("services:\n  web:\n    image: x\n")
    (project / "test_web.py").write_text("def test_web(pyairtable_web):\n    pass\n")
    bare = tmp_path / "bin"  # a PATH with neither docker nor docker-compose
    bare.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, "--pyairtable-backend", "compose"],
        cwd=project,
        env={**os.environ, "PATH": str(bare)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "no Docker Compose found" in done.stdout, done.stdout
    assert run_dirs(no_leaks) == set(), done.stdout


def test_a_kept_compose_stack_whose_record_was_deleted_stays_while_it_runs(
    engine: str, tmp_path: Path, free_ports: Ports, no_leaks: LeakCheck
) -> None:
    """Its logs in the user's directory (nothing of the stack works in the run's own
    directories then): later runs keep its containers and its directories, which are
    the proof that it was kept, as long as its containers run."""
    stack = ComposeStack(tmp_path / "project", free_ports)
    logs = tmp_path / "logs"
    kept = stack.pytest("--pyairtable-keep", "--pyairtable-logs-dir", str(logs), "-k", "not hang")
    assert kept.returncode == 0, kept.stdout
    project = json.loads(record_of(stack.path).read_text())["backend_state"]["project"]
    try:
        ids = compose_projects(project)[project]
        dirs = run_dirs(no_leaks)
        assert dirs and running(ids) == ids
        shutil.rmtree(stack.path / ".pyairtable")  # `git clean -fdX`
        for _ in range(2):
            done = stack.pytest("-k", "not hang")
            assert done.returncode == 0, done.stdout
            assert compose_projects(project) == {project: ids}, done.stdout
            assert running(ids) == ids, done.stdout
            assert dirs <= run_dirs(no_leaks), done.stdout
        down = stack.cli("down", "--volumes")
        assert "has no record any more" in down.stdout, down.stdout
        assert dirs <= run_dirs(no_leaks), down.stdout
    finally:
        for cids in compose_projects(project).values():
            docker_cli("rm", "-f", *cids)  # ours: this test's
    down = stack.cli("down", "--volumes")  # nothing of it runs: its directories go
    assert down.returncode == 0, down.stdout + down.stderr
    assert run_dirs(no_leaks) == set(), down.stdout
