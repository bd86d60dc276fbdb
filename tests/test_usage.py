"""Settings as a user gives them: paths from an ini file, backend names, missing extras."""

from __future__ import annotations

import json
import textwrap

import pytest
from stackrun import run_pytest

from conftest import Ports, Project


def test_ini_paths_resolve_against_the_ini_file_not_the_current_directory(
    project: Project, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    root = project.path
    (root / "stack").mkdir()
    (root / "config").mkdir()
    (root / "tests").mkdir()
    (root / "stack" / "compose.yml").write_text(
        textwrap.dedent(f"""
        services:
          api:
            image: example/api
            environment: {{GREETING: "${{GREETING:?set GREETING}}"}}
            x-pyairtable:
              local: {{command: python -m pytest_pyairtable.standin --name api --port {port}}}
              probe: {{http: "http://127.0.0.1:{port}/health"}}
        """)
    )
    (root / "config" / "dev.env").write_text("GREETING=hello\n")
    (root / "pytest.ini").write_text(
        "[pytest]\n"
        "pyairtable_compose_file = stack/compose.yml\n"
        "pyairtable_env_file = config/dev.env\n"
        "pyairtable_logs_dir = artifacts/logs\n"
        "pyairtable_timeline = artifacts/timeline.json\n"
    )
    (root / "tests" / "test_api.py").write_text("def test_api(pyairtable_api): pass\n")
    done = run_pytest(root / "tests", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert (root / "artifacts" / "logs" / "api.log").is_file()
    assert json.loads((root / "artifacts" / "timeline.json").read_text())["traceEvents"]
    assert not (root / "tests" / "artifacts").exists()


def test_a_mistyped_backend_is_a_usage_error_listing_the_valid_ones(project: Project) -> None:
    project.compose("services:\n  a: {image: x}\n")
    project.tests("def test_a(): pass\n")
    result = project.run("--pyairtable-backend=compse")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--pyairtable-backend*'compse'*local, external, compose*"])


def test_the_compose_backend_without_pytest_docker_says_how_to_install_it(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine without the [docker] extra: pytest-docker cannot be imported."""
    project.compose("services:\n  a: {image: x}\n")
    project.tests("def test_a(pyairtable_a): pass\n")
    # the plugins are named, not found by entry point (that would import pytest-docker)
    project.pytester.makeconftest("import sys\nsys.modules['pytest_docker'] = None\n")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = project.run_subprocess(
        "-p", "pytest_pyairtable.plugin", "--pyairtable-backend=compose"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    assert "the compose backend needs pytest_docker" in text
    assert "pip install 'pytest-pyairtable[docker]'" in text
    assert "Traceback" not in text and "ModuleNotFoundError" not in text


def test_every_setting_and_command_is_in_the_reference() -> None:
    from pathlib import Path

    from pytest_pyairtable.frontends.cli.commands import _parser
    from pytest_pyairtable.session.settings import SETTINGS

    root = Path(__file__).resolve().parent.parent
    reference = (root / "docs" / "reference.md").read_text()
    readme = (root / "README.md").read_text()
    for setting in SETTINGS:
        assert setting.option in reference and setting.ini in reference, setting.name
        if setting.env:
            assert setting.env in reference, setting.env
    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in commands:
        assert f"`pyairtable {command}" in reference, command
    for extra in ("[docker]", "[xdist]", "[servers]"):
        assert extra in readme and extra in reference, extra
