"""The life of a run at its edges: jobs, repeated failures, signals under xdist, what
killed runs leave, PostgreSQL's shared memory and the initdb cluster cache."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from leakcheck import LeakCheck, marked_processes
from stackrun import (
    PYTEST_ARGS,
    cli,
    listening,
    one_service,
    record_of,
    run_processes,
    start_pytest,
    until,
)

from conftest import Ports, Project, unique_run_id

STANDIN = "python -m pytest_pyairtable.standin"


# -- a job's own fixture ---------------------------------------------------------------


def test_a_job_fixture_returns_once_the_job_exited_0(project: Project) -> None:
    project.compose("""
        services:
          awaited:
            image: tool
            x-pyairtable:
              local: {command: ["sh", "-c", "sleep 0.5; touch awaited-done"]}
          app:
            image: x
            profiles: [never]
            depends_on: {awaited: {condition: service_completed_successfully}}
            x-pyairtable: {local: {command: [sleep, "30"]}}
          marked:
            image: tool
            x-pyairtable:
              job: true
              local: {command: ["sh", "-c", "sleep 0.5; touch marked-done"]}
          failing:
            image: tool
            x-pyairtable:
              job: true
              local: {command: ["sh", "-c", "echo 'relation users already exists'; exit 5"]}
    """)
    project.tests("""
        from pathlib import Path

        def test_marked(pyairtable_marked):
            assert Path("marked-done").exists()

        def test_failing(pyairtable_failing):
            pass
    """)
    result = project.run()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*service 'failing' exited with code 5*",
            "*probe: exit code 0 (a one-shot job)*",  # not the probe a job never runs
            "*| relation users already exists*",
        ]
    )
    assert "process alive" not in result.stdout.str()
    # A service that another awaits with service_completed_successfully is a job too,
    # also when only its own fixture is requested (app is not started here).
    project.tests("""
        from pathlib import Path

        def test_awaited(pyairtable_awaited):
            assert Path("awaited-done").exists()
    """)
    project.run("--pyairtable-profile", "never").assert_outcomes(passed=1)


# -- a failed service costs the same for every test that needs it ----------------------

FRAMES_CONFTEST = """
import os, traceback

def pytest_runtest_makereport(item, call):
    if call.when == "setup" and call.excinfo is not None:
        with open({path!r}, "a") as f:
            f.write(f"{{os.getpid()}} {{len(traceback.extract_tb(call.excinfo.tb))}}\\n")
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_a_failed_service_raises_a_fresh_error_per_test(
    project: Project, tmp_path: Path, workers: int
) -> None:
    frames = tmp_path / "frames.txt"
    project.pytester.makeconftest(FRAMES_CONFTEST.format(path=str(frames)))
    project.compose("""
        services:
          broken:
            image: x
            x-pyairtable:
              local: {command: ["sh", "-c", "echo 'bad migration'; exit 3"]}
              probe: {log: never}
    """)
    project.tests("""
        import pytest

        @pytest.mark.parametrize("i", range(30))
        def test_it(pyairtable_broken, i):
            pass
    """)
    result = project.run_subprocess("-n", str(workers)) if workers else project.run()
    result.assert_outcomes(errors=30)
    out = result.stdout.str()
    assert out.count("| bad migration") == 1, out
    assert out.count("reported in full at") >= 29
    by_process: dict[str, list[int]] = {}
    for line in frames.read_text().splitlines():
        pid, count = line.split()
        by_process.setdefault(pid, []).append(int(count))
    assert sum(len(depths) for depths in by_process.values()) == 30
    # After the first (raised where the stack was started), the same depth every time:
    # no traceback growing test after test.
    assert all(len(set(depths[1:])) <= 1 for depths in by_process.values()), by_process


# -- signals and what killed runs leave -------------------------------------------------


def postgres_stack(project: Project, port: int, steps: Path) -> None:
    project.compose(f"""
        services:
          postgres:
            image: postgres:16
            environment: {{POSTGRES_USER: u, POSTGRES_PASSWORD: pw-sigterm, POSTGRES_DB: d}}
            ports: ["{port}:5432"]
    """)
    project.pytester.makeconftest(f"""
        def pytest_pyairtable_before_stop(run):
            with open({str(steps)!r}, "a") as f:
                f.write(f"{{run.name}}: {{run.details.get('before_stop')}}\\n")
    """)


def test_sigterm_to_the_xdist_controller_stops_gracefully(
    project: Project, free_ports: Ports, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    steps = tmp_path / "steps.txt"
    postgres_stack(project, port, steps)
    ready = tmp_path / "ready"
    project.tests(f"""
        import pathlib, time

        def test_hangs(pyairtable_postgres):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(120)
    """)
    proc = start_pytest(
        project.path, "-n", "1", "--pyairtable-logs-dir", "logs", output=subprocess.PIPE
    )
    until(lambda: ready.exists() or proc.poll() is not None, 90)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=90)[0].decode()
    assert proc.returncode == 2, out  # interrupted, as with Ctrl-C; not killed (-15)
    assert steps.read_text() == "postgres: CHECKPOINT done\n", out
    log = (project.path / "logs" / "postgres.log").read_text()
    assert "received fast shutdown request" in log and "smart shutdown" not in log
    assert not listening(port)


def test_sigterm_mid_boot_under_xdist_ends_the_workers_wait_before_the_stop(
    project: Project, tmp_path: Path
) -> None:
    # The workers wait in their fixture for a job that runs for minutes. xdist tears its
    # workers down before the stack stops, and a worker blocked in a request does not
    # answer: the controller must end their wait first.
    started, events = tmp_path / "job-started", tmp_path / "events"
    project.compose(f"""
        services:
          migrate:
            image: tool
            x-pyairtable:
              job: true
              local:
                command: ["sh", "-c", "trap 'echo job-stopped >> {events}; exit 0' TERM; touch {started}; while :; do sleep 0.1; done"]
    """)
    project.pytester.makeconftest(f"""
        import os

        def note(what):
            with open({str(events)!r}, "a") as f:
                f.write(os.environ["PYTEST_XDIST_WORKER"] + what + "\\n")

        def pytest_runtest_setup(item):  # before the fixtures
            note("-waiting")

        def pytest_sessionfinish(session, exitstatus):
            if os.environ.get("PYTEST_XDIST_WORKER"):
                note(f"-ended-{{int(exitstatus)}}")
    """)
    project.tests("""
        import pytest

        @pytest.mark.parametrize("i", range(2))
        def test_needs_migrations(pyairtable_migrate, i):
            pass
    """)
    proc = start_pytest(project.path, "-n", "2", "--dist", "each", output=subprocess.PIPE)

    def both_wait() -> bool:
        lines = events.read_text().splitlines() if events.exists() else []
        return started.exists() and {"gw0-waiting", "gw1-waiting"} <= set(lines)

    until(lambda: both_wait() or proc.poll() is not None, 90, "both workers wait for the job")
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=90)[0].decode()
    assert proc.returncode == 2, out
    lines = events.read_text().splitlines()
    ended = sorted(line for line in lines if "-ended-" in line)
    # each worker's wait ended at once and its session finished by itself (1: its tests
    # errored), not interrupted (2) by execnet after 5 s of not answering xdist
    assert ended == ["gw0-ended-1", "gw1-ended-1"], f"{lines}\n{out}"
    assert lines.index("job-stopped") > max(lines.index(e) for e in ended), lines


def sock_dirs(pid: int) -> list[Path]:
    return list(Path("/tmp").glob(f"pyairtable-sock-{pid}-*"))


def test_killed_runs_leave_no_socket_or_logs_dir(
    project: Project, free_ports: Ports, tmp_path: Path, no_leaks: LeakCheck
) -> None:
    (port,) = free_ports(1)
    one_service(project, port)
    ready = tmp_path / "ready"
    project.tests(f"""
        import pathlib, time

        def test_hangs(pyairtable_a):
            pathlib.Path({str(ready)!r}).touch()
            time.sleep(120)
    """)
    for args in (["-n", "1"], []):
        ready.unlink(missing_ok=True)
        before = set(marked_processes().values())
        proc = start_pytest(project.path, *args)
        until(lambda p=proc: ready.exists() or p.poll() is not None, 60)
        assert proc.poll() is None
        (run_id,) = set(marked_processes().values()) - before
        if args:
            assert sock_dirs(proc.pid)
        proc.kill()
        proc.wait()
        until(lambda r=run_id: not run_processes(r) and not listening(port), 20, "the reaper")
        # the reaper removes the killed run's logs too: nobody is left to report them
        until(lambda r=run_id: not list(no_leaks.root.glob(f"pyairtable-*{r}*")), 20, "its dirs")
        until(lambda r=run_id: r not in marked_processes().values(), 20, "the reaper to end")
        if args:
            killed_controller = proc.pid
    # A killed controller cannot remove its socket dir (it existed above); any later
    # controller on the machine may prove it stale, and ours must.
    project.tests("def test_quick(pyairtable_a): pass\n")
    project.run_subprocess("-n", "1").assert_outcomes(passed=1)
    assert sock_dirs(killed_controller) == []  # the next controller proved it stale


# -- PostgreSQL leaves nothing in /dev/shm -----------------------------------------------


def test_postgres_keeps_its_shared_memory_in_its_data_dir(
    project: Project, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          postgres:
            image: postgres:16
            environment: {{POSTGRES_USER: u, POSTGRES_PASSWORD: pw-shm, POSTGRES_DB: d}}
            ports: ["{port}:5432"]
    """)
    before = set(marked_processes().values())
    up = cli("up", "--detach", cwd=project.path)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        (run_id,) = set(marked_processes().values()) - before
        import psycopg

        dsn = f"postgresql://u:pw-shm@127.0.0.1:{port}/d"
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SHOW dynamic_shared_memory_type").fetchone() == ("mmap",)
        maps = "".join(_maps(pid) for pid in run_processes(run_id))
        assert "pg_dynshmem" in maps and "/dev/shm/PostgreSQL." not in maps
    finally:
        down = cli("down", "--emergency", cwd=project.path)  # SIGKILL: no clean-up by it
    assert down.returncode == 0, down.stdout + down.stderr
    assert run_processes(run_id) == set()


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return ""


# -- the initdb cluster cache is bounded --------------------------------------------------


def fake_cluster(root: Path, key: str, mb: int, age_days: float) -> Path:
    entry = root / key
    entry.mkdir(parents=True)
    (entry / "PG_VERSION").write_text("15\n")
    (entry / "base.bin").write_bytes(b"\0" * (mb << 20))
    when = time.time() - age_days * 86400
    os.utime(entry, (when, when))
    return entry


def test_the_cluster_cache_is_bounded_by_size_and_age(
    tmp_path: Path, free_ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_pyairtable.backends.local import LocalBackend
    from pytest_pyairtable.engine.orchestrator import Orchestrator
    from pytest_pyairtable.model.spec import load_stack

    cache = tmp_path / "cache"
    root = cache / "pytest-pyairtable" / "pg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("PYAIRTABLE_PG_CACHE_MB", "60")
    old = fake_cluster(root, "a" * 20, 1, age_days=40)  # older than the age bound
    big = fake_cluster(root, "b" * 20, 30, age_days=2)  # pushes the total over the bound
    recent = fake_cluster(root, "c" * 20, 1, age_days=1)
    unrelated = root / "notes"
    unrelated.mkdir()
    (unrelated / "README").write_text("not a cluster: never removed")

    (port,) = free_ports(1)
    path = tmp_path / "docker-compose.yml"
    path.write_text(
        "services:\n  db:\n    image: postgres:16\n"
        "    environment: {POSTGRES_USER: cache, POSTGRES_PASSWORD: pw-cache}\n"
        f'    ports: ["{port}:5432"]\n'
    )
    orch = Orchestrator(
        load_stack(path, environ={}), LocalBackend(run_id=unique_run_id("cache-bound"))
    )
    try:
        orch.start()
        orch.wait("db")
    finally:
        orch.stop()
    left = {p.name for p in root.iterdir() if not p.name.startswith(".")}
    new = left - {"a" * 20, "b" * 20, "c" * 20, "notes"}
    assert len(new) == 1  # the cluster this boot made, the newest, is kept
    assert not old.exists() and not big.exists()
    assert recent.exists() and unrelated.exists()


# -- the compose file's record survives only what it should --------------------------------


def test_a_record_of_a_gone_stack_does_not_block_up(project: Project, free_ports: Ports) -> None:
    (a,) = free_ports(1)
    one_service(project, a)
    before = set(marked_processes().values())
    assert cli("up", "--detach", cwd=project.path).returncode == 0
    (run_id,) = set(marked_processes().values()) - before
    for pid in run_processes(run_id):
        os.kill(pid, signal.SIGKILL)
    until(lambda: not listening(a), 10)
    again = cli("up", "--detach", cwd=project.path)
    try:
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already up" not in again.stdout and record_of(project.path).exists()
    finally:
        assert cli("down", cwd=project.path).returncode == 0
    assert not listening(a)


def test_the_job_marker_must_be_a_boolean_and_shows_in_config(project: Project) -> None:
    project.compose("services:\n  m: {image: x, x-pyairtable: {job: true}}\n")
    shown = cli("config", cwd=project.path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["services"]["m"]["x-pyairtable"]["job"] is True
    project.compose("services:\n  m: {image: x, x-pyairtable: {job: 'yes'}}\n")
    refused = cli("config", cwd=project.path)
    assert refused.returncode == 2 and "x-pyairtable.job" in refused.stderr


# A service that says how it found its signals, and ends on SIGHUP as its default does.
DISPOSITIONS = """
import signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

found = {s: signal.getsignal(getattr(signal, s)) for s in ("SIGHUP", "SIGINT", "SIGQUIT")}
print("signals:", " ".join(f"{s}={'ignored' if h is signal.SIG_IGN else 'default'}"
                           for s, h in found.items()), flush=True)


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_services_start_with_the_signals_pytest_ignores_at_their_defaults(
    project: Project, free_ports: Ports
) -> None:
    """Under `nohup pytest` (SIGHUP ignored) or a script's `pytest &` (SIGINT, SIGQUIT
    ignored) a service starts as a container's process does, each signal at its default,
    so its stop signal, here SIGHUP, ends it."""
    (port,) = free_ports(1)
    (project.path / "svc.py").write_text(DISPOSITIONS)
    project.compose(f"""
        services:
          svc:
            image: x
            stop_signal: SIGHUP
            x-pyairtable:
              local: {{command: [python, svc.py, "{port}"]}}
              probe: {{http: "http://127.0.0.1:{port}/"}}
    """)
    project.tests("def test_a(pyairtable_svc): pass\n")

    def ignoring() -> None:  # what nohup and a shell's `&` leave a command with
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)

    done = subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, "--pyairtable-logs-dir", "logs"],
        cwd=project.path,
        capture_output=True,
        text=True,
        preexec_fn=ignoring,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    log = (project.path / "logs" / "svc.log").read_text()
    assert "signals: SIGHUP=default SIGINT=default SIGQUIT=default" in log, log
