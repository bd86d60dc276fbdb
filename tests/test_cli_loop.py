"""The `pyairtable` command in a daily loop: restart one service of a running stack,
global options after the command, `down` with nothing up, the last run's logs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from stackrun import cli, listening, record_of, standin_service, until

from conftest import Ports, Project

STANDIN = "python -m pytest_pyairtable.standin --startup-delay 0.05"


def three_tiers(project: Project, db: int, api: int, web: int) -> None:
    """db <- api (restart: true: restarted with db, as compose) <- web (only re-probed)."""
    project.compose(
        "services:\n"
        + standin_service("db", db)
        + standin_service(
            "api",
            api,
            extra=f"""
                environment: {{UPSTREAM_URLS: "http://127.0.0.1:{db}"}}
                depends_on: {{db: {{condition: service_healthy, restart: true}}}}""",
        )
        + standin_service(
            "web",
            web,
            extra=f"""
                environment: {{UPSTREAM_URLS: "http://127.0.0.1:{api}"}}
                depends_on: {{api: {{condition: service_healthy}}}}""",
        )
    )


def groups(project: Project) -> dict[str, int]:
    record = json.loads(record_of(project.path).read_text())
    return {name: svc["state"]["pgid"] for name, svc in record["services"].items()}


@contextlib.contextmanager
def kept_three_tiers(project: Project, free_ports: Ports) -> Iterator[list[int]]:
    """The three tiers kept by `pyairtable up --detach`; stopped by `down` after."""
    ports = free_ports(3)
    three_tiers(project, *ports)
    up = cli("up", "--detach", cwd=project.path)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        yield ports
    finally:
        assert cli("down", cwd=project.path).returncode == 0
    assert not any(listening(p) for p in ports)


def test_restart_a_kept_stack_service_and_its_restart_dependents(
    project: Project, free_ports: Ports
) -> None:
    with kept_three_tiers(project, free_ports):
        before = groups(project)
        done = cli("restart", "db", cwd=project.path)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert [line.split()[1] for line in lines] == ["db", "api", "web"]
        assert "restarted" in lines[0] and "restarted" in lines[1]
        assert "healthy again" in lines[2]
        after = groups(project)
        assert after["db"] != before["db"] and after["api"] != before["api"]
        assert after["web"] == before["web"]
        status = cli("status", cwd=project.path)
        assert status.returncode == 0, status.stdout
        only = cli("restart", "db", "--no-deps", cwd=project.path)
        assert only.returncode == 0 and groups(project)["api"] == after["api"]
        assert "api" in only.stdout and "healthy again" in only.stdout


def test_up_over_a_kept_stack_with_a_dead_service_says_why_and_how_to_heal(
    project: Project, free_ports: Ports
) -> None:
    with kept_three_tiers(project, free_ports) as (db, _, web):
        os.killpg(groups(project)["web"], signal.SIGKILL)  # the group our `up` started
        until(lambda: not listening(web), what="web gone")
        again = cli("up", "--detach", cwd=project.path)
        assert again.returncode != 0
        out = again.stdout + again.stderr
        # before the ports the rest still holds: what is wrong and the one command to heal
        reason = out.index("its service 'web' is no longer running")
        assert "(`pyairtable restart web` starts it)" in out
        assert reason < out.index(f"port {db} is already in use")
        healed = cli("restart", "web", cwd=project.path)
        assert healed.returncode == 0, healed.stdout + healed.stderr
        assert cli("status", cwd=project.path).returncode == 0


def test_restart_under_a_foreground_up_then_down_leaves_nothing(
    project: Project, free_ports: Ports, tmp_path: Path
) -> None:
    db, api, web = free_ports(3)
    three_tiers(project, db, api, web)
    out = tmp_path / "up.out"
    with open(out, "w") as sink:
        owner = subprocess.Popen(
            [sys.executable, "-m", "pytest_pyairtable.cli", "up"],
            cwd=project.path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        until(lambda: "Press Ctrl-C" in out.read_text() or owner.poll() is not None, 60)
        assert owner.poll() is None, out.read_text()
        before = groups(project)
        done = cli("restart", "web", cwd=project.path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert groups(project)["web"] != before["web"] and listening(web)
        down = cli("down", cwd=project.path)
        assert down.returncode == 0, down.stdout + down.stderr
        assert owner.wait(30) == 0
        assert not any(listening(p) for p in (db, api, web))  # the restarted one too
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.wait()


def test_restart_of_an_unknown_service_or_with_nothing_running(
    project: Project, free_ports: Ports
) -> None:
    db, api, web = free_ports(3)
    three_tiers(project, db, api, web)
    nothing = cli("restart", "db", cwd=project.path)
    assert nothing.returncode == 2 and "no running stack is recorded" in nothing.stderr
    assert cli("up", "--detach", "db", cwd=project.path).returncode == 0
    try:
        unknown = cli("restart", "cache", cwd=project.path)
        assert unknown.returncode == 2 and "no service 'cache'" in unknown.stderr
    finally:
        assert cli("down", cwd=project.path).returncode == 0


def test_global_options_also_after_the_command(project: Project) -> None:
    project.compose("""
        services:
          app: {image: x}
          debugger: {image: x, profiles: [debug]}
    """)
    project.compose("services:\n  other: {image: x}\n", name="other.yml")
    plain = cli("graph", cwd=project.path)
    assert "debugger" not in plain.stdout
    late = cli("graph", "--profile", "debug", cwd=project.path)
    assert late.returncode == 0 and "debugger" in late.stdout
    early = cli("--profile", "debug", "graph", cwd=project.path)
    assert early.stdout == late.stdout
    merged = cli("-f", "docker-compose.yml", "config", "-f", "other.yml", cwd=project.path)
    assert set(json.loads(merged.stdout)["services"]) == {"app", "other"}


def test_down_with_nothing_running_exits_0_with_a_note(project: Project) -> None:
    project.compose("services:\n  app: {image: x}\n")
    done = cli("down", cwd=project.path)
    assert done.returncode == 0
    assert "nothing to stop" in done.stdout


def test_no_compose_file_names_what_was_looked_for(project: Project) -> None:
    (project.path / "deploy").mkdir()
    (project.path / "deploy" / "base.yml").write_text("services:\n  app: {image: x}\n")
    done = cli("graph", cwd=project.path, env={"COMPOSE_FILE": ""})
    assert done.returncode != 0
    assert f"no compose file in {project.path} (none of compose.yaml, compose.yml" in done.stderr
    assert "Fix: pass -f FILE" in done.stderr and "Traceback" not in done.stderr
    found = cli("-f", "deploy/base.yml", "graph", cwd=project.path)
    assert found.returncode == 0 and "app" in found.stdout


def test_help_lists_every_backend() -> None:
    from pytest_pyairtable.backends import BACKENDS

    text = cli("--help").stdout + cli("up", "--help").stdout
    for name in BACKENDS:
        assert text.count(name) >= 2, name


def test_logs_of_the_last_finished_run(project: Project, free_ports: Ports) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          api:
            image: example/api
            environment: {{API_TOKEN: tok-Secret-9}}
            x-pyairtable:
              local:
                command: [sh, -c, "echo token is $$API_TOKEN; exec {STANDIN} --name api --port {port}"]
              probe: {{http: "http://127.0.0.1:{port}/health"}}
    """)
    project.tests("def test_api(pyairtable_api): pass\n")
    project.run().assert_outcomes(passed=1)
    logs = cli("logs", cwd=project.path)
    assert logs.returncode == 0, logs.stderr
    assert "token is ***" in logs.stdout and "tok-Secret-9" not in logs.stdout
    assert "api: listening on" in logs.stdout
    assert "the logs of the last run" in logs.stderr
    one = cli("logs", "api", "-n", "1", cwd=project.path)
    assert one.returncode == 0 and len(one.stdout.splitlines()) == 1


def test_status_from_a_subdirectory_tells_each_services_own_uptime(
    project: Project, free_ports: Ports
) -> None:
    """`status`, `logs` and `down` find the project's stack from a subdirectory, as compose
    finds its file; a service's uptime counts from its own start, not the record's."""
    db, api = free_ports(2)
    project.compose(
        "services:\n"
        + standin_service("db", db, delay=1.5)
        + standin_service("api", api, extra="depends_on: {db: {condition: service_healthy}}")
    )
    sub = project.path / "tests" / "unit"
    sub.mkdir(parents=True)
    up = cli("up", "--detach", cwd=sub)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        status = cli("status", "--json", cwd=sub)
        assert status.returncode == 0, status.stdout + status.stderr
        rows = {r["service"]: r for r in json.loads(status.stdout)["services"]}
        # api started once db was ready, 1.5 s after db started: db has been up longer
        assert rows["db"]["uptime_seconds"] - rows["api"]["uptime_seconds"] >= 1.0, rows
        logs = cli("logs", "api", cwd=sub)
        assert logs.returncode == 0 and "api: listening" in logs.stdout, logs.stderr
    finally:
        down = cli("down", cwd=sub)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not listening(db) and not listening(api)
