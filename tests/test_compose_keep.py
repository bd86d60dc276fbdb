"""A kept stack on the compose backend: recorded with its project and containers, left
alone by other runs, attached to, a service restarted, and removed by `pyairtable down`
from the record."""

from __future__ import annotations

import json

import pytest
from containers import IMAGE, ROOT, docker_cli, standin
from stackrun import cli, listening, record_of, run_pytest

from conftest import Ports, Project


def containers(project_name: str) -> list[str]:
    out = docker_cli("ps", "-aq", "--filter", f"label=com.docker.compose.project={project_name}")
    return out.stdout.split()


def test_compose_keep_attach_and_down(
    compose_project: Project,
    free_ports: Ports,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    app, other = free_ports(2)
    monkeypatch.setenv("APP_PORT", str(app))
    work = compose_project.path
    compose_project.compose(f"""
        services:
          migrate:
            image: {IMAGE}
            network_mode: host
            volumes: ["/usr:/usr:ro", "{work}:/work"]
            command: ["/bin/sh", "-c", "echo ran >> /work/runs.txt"]
          app:
            image: {IMAGE}
            network_mode: host
            volumes: ["/usr:/usr:ro", "{ROOT}:/app:ro"]
            environment: {{PYTHONPATH: /app}}
            stop_grace_period: 5s
            command: ["/usr/bin/python3", "-m", "pytest_pyairtable.standin", "--name", "app", "--port", "${{APP_PORT:?set APP_PORT}}"]
            depends_on: {{migrate: {{condition: service_completed_successfully}}}}
            x-pyairtable: {{probe: {{http: "http://127.0.0.1:${{APP_PORT}}/health"}}}}
    """)
    compose_project.tests("def test_app(pyairtable_app): pass\n")
    first = compose_project.run_subprocess("--pyairtable-backend", "compose", "--pyairtable-keep")
    assert first.ret == 0, first.stdout.str()
    assert "stack kept running" in first.stdout.str()
    record = json.loads(record_of(work).read_text())
    project_name = record["backend_state"]["project"]
    running = containers(project_name)
    assert len(running) == 2 and listening(app)
    try:
        # another compose run (another project) cleans up stale projects: not this one
        other_dir = tmp_path_factory.mktemp("other-compose-project")
        (other_dir / "pytest.ini").write_text("[pytest]\n")
        (other_dir / "docker-compose.yml").write_text("services:" + standin("web", other))
        (other_dir / "test_other.py").write_text("def test_web(pyairtable_web): pass\n")
        done = run_pytest(other_dir, "--pyairtable-backend", "compose")
        assert done.returncode == 0, done.stdout
        assert sorted(containers(project_name)) == sorted(running) and listening(app)

        status = cli("status", cwd=work, drop=["APP_PORT"])
        assert status.returncode == 0, status.stdout + status.stderr
        assert "completed" in status.stdout
        second = compose_project.run_subprocess("--pyairtable-backend", "compose")
        assert second.ret == 0, second.stdout.str()
        second.stdout.fnmatch_lines(["*attached to the kept stack (2 services)*"])
        assert (work / "runs.txt").read_text() == "ran\n"  # the job did not run again

        # the dev loop's restart: the kept container again, its log going on once
        restarted = cli("restart", "app", cwd=work, drop=["APP_PORT"])
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert "app" in restarted.stdout and "restarted" in restarted.stdout
        assert sorted(containers(project_name)) == sorted(running) and listening(app)
        logs = cli("logs", "app", cwd=work, drop=["APP_PORT"])
        assert logs.returncode == 0, logs.stdout + logs.stderr
        assert logs.stdout.count("app: starting") == 2, logs.stdout  # once a run, no copy
        assert logs.stdout.count("app: stopped") == 1, logs.stdout
        third = compose_project.run_subprocess("--pyairtable-backend", "compose")
        assert third.ret == 0, third.stdout.str()
        third.stdout.fnmatch_lines(["*attached to the kept stack (2 services)*"])
    finally:
        down = cli("down", cwd=work, drop=["APP_PORT"])
    assert down.returncode == 0, down.stdout + down.stderr
    assert containers(project_name) == []
    assert not listening(app) and not record_of(work).exists()
