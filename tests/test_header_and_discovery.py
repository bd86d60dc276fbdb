"""The header says which compose files were read and how they were chosen; a test that
asks for a service with no compose file gets our error; the option's space form and
``=`` form choose the same rootdir and ini file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from stackrun import PYTEST_ARGS

from conftest import Project


def pytest_in(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, *args], cwd=cwd,
        env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    (tmp_path / "proj").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "proj" / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly\n")
    (tmp_path / "proj" / "test_a.py").write_text("def test_a(): pass\n")
    (tmp_path / "other" / "docker-compose.yml").write_text("services:\n  a: {image: x}\n")
    (tmp_path / "proj" / "compose.yaml").write_text("services:\n  b: {image: x}\n  c: {image: x}\n")
    (tmp_path / "proj" / "compose.override.yaml").write_text("services:\n  b: {image: y}\n")
    return tmp_path


def test_the_header_names_the_files_read_and_where_from(layout: Path) -> None:
    proj = layout / "proj"
    found = pytest_in(proj)
    assert (f"pyairtable: compose file(s) {proj / 'compose.yaml'}, {proj / 'compose.override.yaml'}"
            " (found by compose's default names): 2 services, 1 tiers") in found  # fmt: skip
    given = pytest_in(proj, "--pyairtable-compose-file=../other/docker-compose.yml")
    assert (f"compose file(s) {layout / 'other' / 'docker-compose.yml'} "
            "(from --pyairtable-compose-file): 1 services") in given  # fmt: skip
    env = pytest_in(proj, env={"COMPOSE_FILE": "../other/docker-compose.yml"})
    assert "(from COMPOSE_FILE): 1 services" in env
    (proj / "pytest.ini").write_text(
        "[pytest]\npyairtable_compose_file = ../other/docker-compose.yml\n"
    )
    ini = pytest_in(proj)
    assert "(from ini pyairtable_compose_file): 1 services" in ini


def test_the_space_form_keeps_the_rootdir(layout: Path) -> None:
    proj = layout / "proj"
    for form in (["--pyairtable-compose-file", "../other/docker-compose.yml"],
                 ["--pyairtable-compose-file=../other/docker-compose.yml"]):  # fmt: skip
        out = pytest_in(proj, *form)
        assert f"rootdir: {proj}" in out and "configfile: pytest.ini" in out, out
        assert "1 passed" in out and "(from --pyairtable-compose-file): 1 services" in out


def test_a_service_fixture_without_a_compose_file_says_what_was_searched(
    project: Project,
) -> None:
    project.tests("def test_x(pyairtable_postgres): pass\n\ndef test_plain(): pass\n")
    result = project.run()
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert "fixture 'pyairtable_postgres' not found" not in out
    assert (f"the test requests pyairtable_postgres, but there is no compose file in "
            f"{project.path} (none of compose.yaml, compose.yml, docker-compose.yml, "
            "docker-compose.yaml, and COMPOSE_FILE is unset), so no service has a fixture. "
            "Fix: pass --pyairtable-compose-file PATH") in out.replace("\n", "")  # fmt: skip
