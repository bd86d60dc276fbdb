"""The examples in docs/ run as tests."""

from __future__ import annotations

from pathlib import Path

from conftest import Ports, Project

ROOT = Path(__file__).resolve().parent.parent


def test_hooks_example_plugin(project: Project, free_ports: Ports) -> None:
    (port,) = free_ports(1)
    project.pytester.makeconftest((ROOT / "docs" / "examples" / "conftest_hooks.py").read_text())
    project.compose(f"""
        services:
          api:
            image: x
            environment: {{EXPECTED_VERSION: api}}
            x-pyairtable:
              local: {{command: python -m pytest_pyairtable.standin --name api --port {port}}}
              probe: {{http: "http://127.0.0.1:{port}/health"}}
    """)
    project.tests(
        "def test_api(pyairtable_api):\n    assert pyairtable_api.details == {'version': 'api'}\n"
    )
    project.run().assert_outcomes(passed=1)
    assert (project.path / "services-ready.txt").read_text() == "api tier=1 {'version': 'api'}\n"


def test_logs_dir_keeps_logs_for_ci_artifacts(project: Project, free_ports: Ports) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          api:
            image: x
            x-pyairtable:
              local: {{command: python -m pytest_pyairtable.standin --name api --port {port}}}
              probe: {{tcp: "127.0.0.1:{port}"}}
    """)
    project.tests("def test_api(pyairtable_api): pass\n")
    project.run("--pyairtable-logs-dir", "artifacts/logs").assert_outcomes(passed=1)
    log = project.path / "artifacts" / "logs" / "api.log"
    assert "api: listening on" in log.read_text()
