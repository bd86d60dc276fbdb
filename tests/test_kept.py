"""Kept stacks through a real dev loop: kept by one run, left alone by other runs'
clean-up, attached to by the next, stopped by `pyairtable down` from the record alone."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from leakcheck import LeakCheck, marked_processes
from stackrun import (
    cli,
    listening,
    one_service,
    record_of,
    run_processes,
    run_pytest,
    start_pytest,
    until,
)

from conftest import Background, Ports, Project
from pytest_pyairtable.backends.stopper import wait_child

STANDIN = "python -m pytest_pyairtable.standin"

MIGRATE = """
import os, psycopg
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS notes (body text)")
with open(os.environ["RUNS"], "a") as f:
    f.write("ran\\n")
"""


def app_with_migration(project: Project, db: int, app: int) -> Path:
    """postgres <- migrate (a one-shot job) <- app; the password is a required variable."""
    runs = project.path / "migrations-run.txt"
    (project.path / "migrate.py").write_text(MIGRATE)
    dsn = f"postgresql://dev:${{DB_PASSWORD}}@127.0.0.1:{db}/devdb"
    project.compose(f"""
        services:
          postgres:
            image: postgres:16
            environment: {{POSTGRES_USER: dev, POSTGRES_PASSWORD: "${{DB_PASSWORD:?set DB_PASSWORD}}", POSTGRES_DB: devdb}}
            ports: ["{db}:5432"]
          migrate:
            image: example/app
            depends_on: {{postgres: {{condition: service_healthy}}}}
            x-pyairtable:
              local:
                command: [python, migrate.py]
                env: {{DATABASE_URL: "{dsn}", RUNS: "{runs}"}}
          app:
            image: example/app
            depends_on: {{migrate: {{condition: service_completed_successfully}}}}
            x-pyairtable:
              local:
                command: {STANDIN} --name app --port {app}
                env: {{DATABASE_URL: "{dsn}"}}
              probe: {{http: "http://127.0.0.1:{app}/health"}}
    """)
    return runs


def other_project(root: Path, db: int, app: int) -> Path:
    root.mkdir()
    (root / "docker-compose.yml").write_text(
        textwrap.dedent(f"""
        services:
          db:
            image: postgres:16
            environment: {{POSTGRES_USER: o, POSTGRES_PASSWORD: other-pw, POSTGRES_DB: o}}
            ports: ["{db}:5432"]
          web:
            image: x
            depends_on: {{db: {{condition: service_healthy}}}}
            x-pyairtable:
              local: {{command: {STANDIN} --name web --port {app}}}
              probe: {{http: "http://127.0.0.1:{app}/health"}}
    """)
    )
    (root / "test_other.py").write_text(
        "import psycopg\n\n"
        "def test_other(pyairtable_web, pyairtable_db):\n"
        "    with psycopg.connect(pyairtable_db.url) as conn:\n"
        "        assert conn.execute('select 1').fetchone() == (1,)\n"
    )
    return root


def run_dirs(run_id: str, base: Path) -> list[Path]:
    return [*base.glob(f"pyairtable-*{run_id}*"), *Path("/dev/shm").glob(f"pyairtable-*{run_id}*")]


def test_dev_loop_keep_other_project_attach_read_down(
    project: Project,
    free_ports: Ports,
    tmp_path: Path,
    no_leaks: LeakCheck,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, app, other_db, other_app = free_ports(4)
    monkeypatch.setenv("DB_PASSWORD", "dev-secret-31")
    runs = app_with_migration(project, db, app)
    backup = no_leaks.root / "pyairtable-2024-backup"  # someone's own dir, named like ours
    backup.mkdir()
    (backup / "precious.sql").write_text("keep me")

    project.tests("""
        import psycopg

        def test_write(pyairtable_app, pyairtable_postgres):
            with psycopg.connect(pyairtable_postgres.url, autocommit=True) as conn:
                conn.execute("INSERT INTO notes VALUES ('written by run 1')")
    """)
    before = set(marked_processes().values())
    first = project.run_subprocess("--pyairtable-keep")
    assert first.ret == 0, first.stdout.str()
    assert "stack kept running" in first.stdout.str()
    (run_id,) = set(marked_processes().values()) - before
    kept = run_processes(run_id)
    assert kept and runs.read_text() == "ran\n"
    dirs = run_dirs(run_id, no_leaks.root)
    assert dirs
    try:
        # An unrelated project, on other ports, boots and stops its own stack.
        other = other_project(tmp_path / "other", other_db, other_app)
        done = run_pytest(other, "-q")
        assert done.returncode == 0, done.stdout + done.stderr
        assert run_processes(run_id) == kept  # the kept stack was not touched
        assert all(d.exists() for d in dirs), "another run's clean-up removed kept data"
        assert (backup / "precious.sql").read_text() == "keep me"

        # A plain pytest attaches: the job does not run again, and run 1's row is there.
        project.tests("""
            import psycopg

            def test_read(pyairtable_app, pyairtable_postgres):
                with psycopg.connect(pyairtable_postgres.url) as conn:
                    rows = conn.execute("SELECT body FROM notes").fetchall()
                assert rows == [("written by run 1",)]
        """)
        second = project.run_subprocess()
        assert second.ret == 0, second.stdout.str()
        second.stdout.fnmatch_lines(["*attached to the kept stack (3 services)*"])
        assert runs.read_text() == "ran\n"
        assert run_processes(run_id) == kept
    finally:
        # `down` needs only the record: not the compose file's ${DB_PASSWORD:?}.
        down = cli("down", cwd=project.path, drop=["DB_PASSWORD"])
    assert down.returncode == 0, down.stdout + down.stderr
    assert "dev-secret-31" not in down.stdout + down.stderr
    assert "CHECKPOINT done" in down.stdout  # data safety first, as at the end of a run
    assert run_processes(run_id) == set()  # confirmed gone before `down` returned
    assert not listening(db) and not listening(app)
    assert not record_of(project.path).exists()
    assert [d for d in run_dirs(run_id, no_leaks.root) if not d.name.endswith("-logs")] == []
    assert (backup / "precious.sql").exists()
    import shutil

    shutil.rmtree(backup)


def job_and_log_probe(project: Project) -> None:
    project.compose("""
        services:
          seed:
            image: tool
            x-pyairtable:
              local: {command: ["sh", "-c", "echo seeded >> seed-runs.txt"]}
          worker:
            image: x
            environment: {TOKEN: "${WORKER_TOKEN:?set WORKER_TOKEN}"}
            depends_on: {seed: {condition: service_completed_successfully}}
            x-pyairtable:
              local: {command: ["sh", "-c", "echo booting; echo ready; exec sleep 300"]}
              probe: {log: "^ready$"}
    """)


def test_status_and_logs_of_a_healthy_stack_with_a_completed_job(project: Project) -> None:
    job_and_log_probe(project)
    up = cli("up", "--detach", cwd=project.path, env={"WORKER_TOKEN": "tok-secret-5"})
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        status = cli("status", "--json", cwd=project.path, drop=["WORKER_TOKEN"])
        assert status.returncode == 0, status.stdout + status.stderr
        rows = {r["service"]: r for r in json.loads(status.stdout)["services"]}
        assert (rows["seed"]["state"], rows["seed"]["health"]) == ("completed", "completed")
        assert (rows["worker"]["state"], rows["worker"]["health"]) == ("running", "healthy")
        plain = cli("status", cwd=project.path, drop=["WORKER_TOKEN"])
        assert plain.returncode == 0 and "no output yet" not in plain.stdout
        lines = {line.split()[0]: line for line in plain.stdout.splitlines()}
        assert re.search(r" started \d+s ago$", lines["seed"]), lines["seed"]  # not "up"
        assert re.search(r" up \d+s$", lines["worker"]), lines["worker"]
        logs = cli("logs", "worker", cwd=project.path, drop=["WORKER_TOKEN"])
        assert logs.returncode == 0 and "ready" in logs.stdout
        # a pytest run attaches to it, and the job does not run again
        project.tests("def test_it(pyairtable_worker, pyairtable_seed): pass\n")
        attached = run_pytest(project.path, env={"WORKER_TOKEN": "tok-secret-5"})
        assert attached.returncode == 0, attached.stdout
        assert "attached to the kept stack" in attached.stdout
        assert (project.path / "seed-runs.txt").read_text() == "seeded\n"
    finally:
        down = cli("down", cwd=project.path, drop=["WORKER_TOKEN"])
    assert down.returncode == 0, down.stdout + down.stderr


def test_down_stops_in_reverse_dependency_order_not_tier_by_tier(project: Project) -> None:
    # x <- a (takes a second to stop), y <- c (stops at once). Tier by tier, y would wait
    # for a; in dependency order y stops as soon as c has.
    project.compose("""
        services:
          x: {image: x, x-pyairtable: {local: {command: [sleep, "300"]}}}
          y: {image: x, x-pyairtable: {local: {command: [sleep, "300"]}}}
          a:
            image: x
            depends_on: [x]
            x-pyairtable:
              local: {command: ["sh", "-c", "trap 'sleep 1; exit 0' TERM; echo up; while :; do sleep 0.1; done"]}
              probe: {log: up}
          c: {image: x, depends_on: [y], x-pyairtable: {local: {command: [sleep, "300"]}}}
    """)
    up = cli("up", "--detach", cwd=project.path)
    assert up.returncode == 0, up.stdout + up.stderr
    down = cli("down", cwd=project.path)
    assert down.returncode == 0, down.stdout + down.stderr
    stopped = [line.split()[1] for line in down.stdout.splitlines() if " stopped" in line]
    assert sorted(stopped) == ["a", "c", "x", "y"], down.stdout
    assert stopped.index("c") < stopped.index("y") < stopped.index("a") < stopped.index("x")


def test_down_escalates_when_a_foreground_up_ignores_sigint(
    project: Project, free_ports: Ports, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          a:
            image: x
            x-pyairtable:
              local: {{command: {STANDIN} --name a --port {port}}}
              probe: {{http: "http://127.0.0.1:{port}/health"}}
    """)
    out = tmp_path / "up.out"
    command = f"trap '' INT; exec {sys.executable} -m pytest_pyairtable.cli up"
    with open(out, "w") as sink:  # as `pyairtable up &` in a script: SIGINT is ignored
        owner = subprocess.Popen(
            ["sh", "-c", command], cwd=project.path, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        until(lambda: "Press Ctrl-C" in out.read_text() or owner.poll() is not None, 60)
        assert owner.poll() is None, out.read_text()
        down = cli("down", cwd=project.path)
        assert down.returncode == 0, down.stdout + down.stderr
        assert owner.poll() is not None, "down returned while the owner still runs"
        assert not listening(port)
        assert not record_of(project.path).exists()
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.wait()


DAEMONIZE = """
import os, sys
escaped_port, port = sys.argv[1], sys.argv[2]
standin = [sys.executable, "-m", "pytest_pyairtable.standin", "--name"]
if os.fork() == 0:  # double fork + setsid: what a daemonising service does
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [*standin, "escaped", "--port", escaped_port])
    os._exit(0)
os.wait()
os.execv(sys.executable, [*standin, "main", "--port", port])
"""


def escaping_stack(project: Project, ports: list[int]) -> None:
    escaped, main, child, leader = ports
    (project.path / "daemonize.py").write_text(DAEMONIZE)
    project.compose(f"""
        services:
          daemon:
            image: x
            x-pyairtable:
              local: {{command: [python, daemonize.py, "{escaped}", "{main}"]}}
              probe: {{http: "http://127.0.0.1:{main}/health"}}
          group:
            image: x
            x-pyairtable:
              local: {{command: ["sh", "-c", "{STANDIN} --name child --port {child} & exec {STANDIN} --name leader --port {leader}"]}}
              probe: {{http: "http://127.0.0.1:{leader}/health"}}
    """)


def test_the_run_ends_what_escaped_its_process_group(project: Project, free_ports: Ports) -> None:
    ports = free_ports(4)
    escaping_stack(project, ports)
    project.tests(f"""
        import time
        from stackrun_probe import listening

        def test_it(pyairtable_daemon, pyairtable_group):
            deadline = time.monotonic() + 30
            while not all(listening(p) for p in {ports}):
                assert time.monotonic() < deadline
                time.sleep(0.02)
    """)
    (project.path / "stackrun_probe.py").write_text(
        "import socket\n\ndef listening(port):\n    with socket.socket() as s:\n"
        "        return s.connect_ex(('127.0.0.1', port)) == 0\n"
    )
    project.run().assert_outcomes(passed=1)
    assert [p for p in ports if listening(p)] == []


def test_the_reaper_ends_what_escaped_its_process_group(
    project: Project, free_ports: Ports
) -> None:
    ports = free_ports(4)
    escaping_stack(project, ports)
    ready = project.path / "ready"
    project.tests(f"""
        import pathlib, time

        def test_hangs(pyairtable_daemon, pyairtable_group):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(300)
    """)
    before = set(marked_processes().values())
    proc = start_pytest(project.path)
    until(lambda: ready.exists() or proc.poll() is not None, 60)
    assert proc.poll() is None
    until(lambda: all(listening(p) for p in ports), 30, "what the services started")
    (run_id,) = set(marked_processes().values()) - before
    assert len(run_processes(run_id)) >= 4  # two leaders, a child and the escaped one
    proc.kill()
    proc.wait()
    until(lambda: run_id not in marked_processes().values(), 20, "the reaper to finish")
    assert not any(listening(p) for p in ports)


def test_down_ends_a_group_whose_leader_died_and_what_escaped_it(
    project: Project, free_ports: Ports
) -> None:
    ports = free_ports(4)
    escaped, _, child, leader = ports
    escaping_stack(project, ports)
    before = set(marked_processes().values())
    up = cli("up", "--detach", cwd=project.path)
    assert up.returncode == 0, up.stdout + up.stderr
    (run_id,) = set(marked_processes().values()) - before
    until(lambda: all(listening(p) for p in ports), 30, "what the services started")
    # the group's leader dies; its child, in the same process group, still listens
    leaders = [p for p in run_processes(run_id) if f"--port\0{leader}".encode() in _cmdline(p)]
    os.kill(leaders[0], signal.SIGKILL)
    until(lambda: not listening(leader), 10)
    assert listening(child) and listening(escaped)
    down = cli("down", cwd=project.path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert [p for p in ports if listening(p)] == []  # confirmed, not assumed
    assert run_processes(run_id) == set()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_ctrl_c_during_up_detach_keeps_nothing(
    project: Project, free_ports: Ports, tmp_path: Path, background: Background
) -> None:
    a, b = free_ports(2)
    project.compose(f"""
        services:
          a:
            image: x
            x-pyairtable: {{local: {{command: {STANDIN} --name a --port {a}}}, probe: {{tcp: "127.0.0.1:{a}"}}}}
          b:
            image: x
            depends_on: {{a: {{condition: service_healthy}}}}
            x-pyairtable: {{local: {{command: {STANDIN} --name b --port {b} --startup-delay 60}}, probe: {{tcp: "127.0.0.1:{b}"}}}}
    """)
    out = tmp_path / "up.out"
    before = set(marked_processes().values())
    with open(out, "w") as sink:  # a terminal's Ctrl-C reaches it (see `background`)
        proc = background(
            [sys.executable, "-m", "pytest_pyairtable.cli", "up", "--detach"],
            cwd=project.path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    until(lambda: "b " in out.read_text() and "starting" in out.read_text(), 60)
    until(lambda: listening(a), 30)
    proc.send_signal(signal.SIGINT)
    code = wait_child(proc, 60)
    assert code is not None, f"up --detach went on after a Ctrl-C:\n{out.read_text()}"
    assert code != 0, out.read_text()
    assert not record_of(project.path).exists(), out.read_text()
    new = set(marked_processes().values()) - before
    assert all(run_processes(run) == set() for run in new)
    assert not listening(a)


def test_up_twice_says_already_up(project: Project, free_ports: Ports) -> None:
    (a,) = free_ports(1)
    one_service(project, a)
    first = cli("up", "--detach", cwd=project.path)
    assert first.returncode == 0, first.stdout + first.stderr
    try:
        again = cli("up", "--detach", cwd=project.path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already up" in again.stdout and "in use" not in again.stdout + again.stderr
        foreground = cli("up", cwd=project.path, timeout=60)
        assert foreground.returncode == 0 and "already up" in foreground.stdout
    finally:
        down = cli("down", cwd=project.path)
    assert down.returncode == 0, down.stderr


def test_keeping_never_orphans_another_kept_stack(project: Project, free_ports: Ports) -> None:
    a, b = free_ports(2)
    project.compose("""
        services:
          a:
            image: x
            x-pyairtable:
              local:
                command: python -m pytest_pyairtable.standin --name a --port ${PORT}
              probe:
                tcp: "127.0.0.1:${PORT}"
    """)
    first = cli("up", "--detach", cwd=project.path, env={"PORT": str(a)})
    assert first.returncode == 0, first.stdout + first.stderr
    try:
        # another env: not attached to; kept, it would replace the record of the first
        second = cli("up", "--detach", cwd=project.path, env={"PORT": str(b)})
        assert second.returncode == 1, second.stdout + second.stderr
        assert "records another stack that still runs" in second.stdout
        assert listening(a) and not listening(b)
    finally:
        down = cli("down", cwd=project.path)
    assert down.returncode == 0 and not listening(a)
