"""Which compose files a run reads, and that fixture registration reads them the same way.

The pytest plugin and the command line pick files as compose does (repeatable option,
ini list, COMPOSE_FILE, the automatic override file, compose's default names); the
fixtures are registered through the same loader as the full load (cached by every
input), and `pyairtable config` prints what compose prints for the fields we model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from compose_reference import find_reference, needs_reference, reference_services, run_reference

from conftest import Project
from pytest_pyairtable.model.topology import read_topology
from pytest_pyairtable.session.runtime import Runtime, runtime_for
from pytest_pyairtable.session.settings import resolve
from pytest_pyairtable.support.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def session(directory: Path, environ: dict[str, str], **options: object) -> Runtime:
    settings = resolve(lambda s: options.get(s.name), lambda s: None, environ)
    return runtime_for(settings, directory, directory)


def test_repeated_compose_files_merge_in_order(tmp_path: Path) -> None:
    write(tmp_path / "base.yml", "services:\n  api: {image: x, environment: {LEVEL: base}}\n")
    write(tmp_path / "dev.yml", "services:\n  api: {environment: {LEVEL: dev}}\n  db: {image: y}\n")
    s = session(tmp_path, {}, compose_file=["base.yml", "dev.yml"])
    assert s.compose_files == (tmp_path / "base.yml", tmp_path / "dev.yml")
    assert set(s.topology()) == {"api", "db"}
    assert s.stack is not None and s.stack.services["api"].environment["LEVEL"] == "dev"


def test_compose_file_variable_with_its_separator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "a.yml", "services:\n  a: {image: x}\n")
    write(tmp_path / "b.yml", "services:\n  b: {image: x}\n")
    monkeypatch.setenv("COMPOSE_FILE", "a.yml;b.yml")
    monkeypatch.setenv("COMPOSE_PATH_SEPARATOR", ";")
    assert set(session(tmp_path, dict(os.environ)).topology()) == {"a", "b"}


def test_default_names_and_the_override_file_beside_them(tmp_path: Path) -> None:
    write(tmp_path / "docker-compose.yml", "services:\n  legacy: {image: x}\n")
    write(tmp_path / "compose.yaml", "services:\n  api: {image: x, ports: ['8000:8000']}\n")
    write(
        tmp_path / "compose.override.yaml",
        """
        services:
          api:
            x-pyairtable:
              local: {command: python -m api --port 8000}
        """,
    )
    s = session(tmp_path, {})
    assert s.compose_files == (tmp_path / "compose.yaml", tmp_path / "compose.override.yaml")
    assert s.stack is not None
    assert s.stack.services["api"].local.command == ("python", "-m", "api", "--port", "8000")


def test_no_compose_file_means_no_stack_and_no_error(tmp_path: Path) -> None:
    s = session(tmp_path, {})
    assert s.topology() == {} and s.stack is None and s.error is None


def test_a_missing_named_file_is_the_session_error(tmp_path: Path) -> None:
    s = session(tmp_path, {}, compose_file=["nope.yml"])
    assert isinstance(s.error, ConfigError) and "nope.yml not found" in str(s.error)


def test_compose_profiles_in_dotenv_reach_fixtures_and_graph(project: Project) -> None:
    """The report: `pyairtable graph` listed a service pytest had no fixture for."""
    project.compose("services:\n  app: {image: x}\n  debug: {image: x, profiles: [debug]}\n")
    project.env("COMPOSE_PROFILES=debug\n")
    result = project.run("--fixtures")
    result.stdout.fnmatch_lines(["*pyairtable_debug*"])
    graph = subprocess.run(
        [sys.executable, "-m", "pytest_pyairtable.cli", "graph"],
        cwd=project.path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "debug" in graph.stdout


def test_fixture_registration_sees_included_and_extended_services(project: Project) -> None:
    project.compose(
        """
        include: [backend/compose.yaml]
        services:
          web: {extends: {file: common.yml, service: base}, depends_on: [api]}
        """
    )
    write(project.path / "backend/compose.yaml", "services:\n  api: {image: x}\n")
    write(project.path / "common.yml", "services:\n  base: {image: x}\n")
    result = project.run("--fixtures")
    result.stdout.fnmatch_lines(["*pyairtable_api*"])
    result.stdout.fnmatch_lines(["*pyairtable_web*"])


def test_unset_variables_are_warned_once_each(project: Project) -> None:
    project.compose(
        """
        x-image: &image {image: "x:${UNSET_TAG}"}
        services:
          a: {<<: *image, x-pyairtable: {local: {command: [sleep, "30"]}}}
          b: {<<: *image}
          c: {<<: *image}
        """
    )
    project.tests("def test_a(pyairtable_a):\n    pass\n")
    result = project.run()
    result.assert_outcomes(passed=1)
    warned = [line for line in result.outlines if "UNSET_TAG" in line]
    assert len(warned) == 1, result.outlines
    assert "(in x-image.image, services.a.image, services.b.image and 1 more)" in warned[0]


class TestTopologyCache:
    def edges(self, directory: Path, environ: dict[str, str]) -> dict[str, list[str]]:
        return read_topology([directory / "compose.yaml"], environ=environ)

    def test_an_included_file_change_is_seen(self, tmp_path: Path) -> None:
        write(tmp_path / "compose.yaml", "include: [inc.yml]\nservices:\n  a: {image: x}\n")
        inc = write(tmp_path / "inc.yml", "services:\n  b: {image: x}\n")
        assert set(self.edges(tmp_path, {})) == {"a", "b"}
        inc.write_text("services:\n  b: {image: x}\n  c: {image: x, depends_on: [b]}\n")
        assert self.edges(tmp_path, {}) == {"a": [], "b": [], "c": ["b"]}

    def test_variables_and_a_new_env_file_are_seen(self, tmp_path: Path) -> None:
        write(
            tmp_path / "compose.yaml",
            """
            services:
              a: {image: x, profiles: ["${A_PROFILE:-on}"]}
              b: {image: x, depends_on: {a: {condition: service_started, required: false}}}
            """,
        )
        assert set(self.edges(tmp_path, {"COMPOSE_PROFILES": "on"})) == {"a", "b"}
        assert set(self.edges(tmp_path, {"COMPOSE_PROFILES": "on", "A_PROFILE": "x"})) == {"b"}
        write(tmp_path / ".env", "A_PROFILE=x\n")  # was looked for, absent, now there
        assert set(self.edges(tmp_path, {"COMPOSE_PROFILES": "on"})) == {"b"}

    def test_the_cache_holds_no_value_of_a_variable(self, tmp_path: Path) -> None:
        write(tmp_path / "compose.yaml", "services:\n  a: {image: 'x:${SECRET_TOKEN}'}\n")
        self.edges(tmp_path, {"SECRET_TOKEN": "s3cr3t-value"})
        cache = (tmp_path / ".pyairtable" / "topology.json").read_text()
        assert "SECRET_TOKEN" in cache and "s3cr3t-value" not in cache

    def test_a_warm_cache_reads_no_compose_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write(tmp_path / "compose.yaml", "services:\n  a: {image: x}\n")
        assert self.edges(tmp_path, {}) == {"a": []}
        import pytest_pyairtable.model.loader as loader

        def fail(*_: object, **__: object) -> None:
            raise AssertionError("the loader ran on a warm cache")

        monkeypatch.setattr(loader, "load_model", fail)
        assert self.edges(tmp_path, {}) == {"a": []}


REFERENCE = find_reference()


@needs_reference()
def test_pyairtable_config_prints_what_compose_prints(tmp_path: Path) -> None:
    write(tmp_path / ".env", (ROOT / ".env.example").read_text())
    compose = write(tmp_path / "compose.yaml", (ROOT / "docker-compose.yml").read_text())
    env = {"PATH": os.environ["PATH"], "HOME": str(Path.home()), "PWD": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_pyairtable.cli",
            "-f",
            str(compose),
            "config",
            "--show-secrets",
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
        capture_output=True,
        text=True,
        check=True,
    )
    ours = json.loads(done.stdout.replace("$$", "$"))
    theirs = run_reference(REFERENCE, tmp_path, env)
    assert not isinstance(theirs, str), theirs
    expected = reference_services(theirs)
    printed = {n: {k: v for k, v in s.items() if k in expected[n]} for n, s in ours["services"].items()}  # fmt: skip
    assert printed == expected
    assert ours["name"] == theirs["name"]
    assert all("x-pyairtable" in s for s in ours["services"].values())


def test_pyairtable_config_masks_secrets(tmp_path: Path) -> None:
    write(tmp_path / "compose.yaml", "services:\n  db:\n    image: postgres\n    environment:\n      POSTGRES_PASSWORD: ${DB_PASSWORD}\n")  # fmt: skip
    write(tmp_path / ".env", "DB_PASSWORD=hunter2-secret\n")
    command = [sys.executable, "-m", "pytest_pyairtable.cli", "config"]
    masked = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "hunter2-secret" not in masked.stdout and "POSTGRES_PASSWORD" in masked.stdout
    shown = subprocess.run(
        [*command, "--show-secrets", "--format", "yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "POSTGRES_PASSWORD: hunter2-secret" in shown.stdout
