"""Masking by where a secret stands and by its value, never names, paths or code: a
password equal to a name of the stack (``POSTGRES_PASSWORD: postgres``) is masked after
its name and in its URLs, and the service, image and project keep their names; the
structured outputs are masked inside their data, so they parse."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.support.redact import MASK, Redactor, weak_reason

POSTGRES = """
services:
  postgres:
    image: postgres:15
    environment: {POSTGRES_USER: postgres, POSTGRES_PASSWORD: postgres, POSTGRES_DB: postgres}
  postgres-cleanup:
    image: postgres:15
    depends_on: [postgres]
    command: ["sh", "-c", "PGPASSWORD=postgres psql -h postgres -U postgres -c 'select 1'"]
  rabbit:
    image: rabbitmq:3
    entrypoint: ["sh", "-c", "export RABBITMQ_DEFAULT_PASS=\\"$$(cat /run/secrets/pass)\\"; exec rabbitmq-server"]
    environment: {RABBITMQ_DEFAULT_PASS: hunter2xyz-rabbit}
"""


def pyairtable(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_pyairtable.cli", *args],
        cwd=cwd, capture_output=True, text=True, check=False,
    )  # fmt: skip


def project(tmp_path: Path, text: str, name: str = "airflow") -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "docker-compose.yml").write_text(textwrap.dedent(text))
    return directory


def test_a_password_equal_to_names_keeps_the_names(tmp_path: Path) -> None:
    directory = project(tmp_path, POSTGRES, "postgres")
    graph = pyairtable(directory, "graph")
    assert "tier 2  postgres-cleanup" in graph.stdout and MASK not in graph.stdout
    done = pyairtable(directory, "config")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["name"] == "postgres"
    db = doc["services"]["postgres"]
    assert db["image"] == "postgres:15"
    assert db["environment"] == {"POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": MASK,
                                 "POSTGRES_DB": "postgres"}  # fmt: skip
    assert db["x-pyairtable"]["probe"]["postgres"] == (
        "postgresql://postgres:***@127.0.0.1:5432/postgres"
    )
    cleanup = doc["services"]["postgres-cleanup"]
    assert cleanup["command"][2] == "PGPASSWORD=*** psql -h postgres -U postgres -c 'select 1'"
    warning = ("warning: service 'postgres': POSTGRES_PASSWORD equals the service name; it is "
               "masked only where it appears as a password")  # fmt: skip
    assert done.stderr.count(warning) == 1, done.stderr
    assert "postgres" not in done.stderr.replace("service 'postgres'", "").replace("POSTGRES", "")


def test_structured_config_parses_and_keeps_code(tmp_path: Path) -> None:
    directory = project(tmp_path, POSTGRES)
    for fmt in ("json", "yaml"):
        done = pyairtable(directory, "config", "--format", fmt)
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout) if fmt == "json" else yaml.safe_load(done.stdout)
        rabbit = doc["services"]["rabbit"]
        assert rabbit["entrypoint"][2] == (
            'export RABBITMQ_DEFAULT_PASS="$$(cat /run/secrets/pass)"; exec rabbitmq-server'
        )
        assert rabbit["environment"]["RABBITMQ_DEFAULT_PASS"] == MASK
        assert "hunter2xyz-rabbit" not in done.stdout


def test_weak_values_are_masked_only_where_they_stand_as_secrets(tmp_path: Path) -> None:
    compose = project(tmp_path, POSTGRES) / "docker-compose.yml"
    redact = load_stack(compose).redactor()
    assert redact.weak["postgres"] == "equals a service name"
    assert "hunter2xyz-rabbit" not in redact.weak
    shown = redact("postgres ready at postgresql://postgres:postgres@db/postgres; "
                   "POSTGRES_PASSWORD=postgres; hunter2xyz-rabbit")  # fmt: skip
    assert shown == ("postgres ready at postgresql://postgres:***@db/postgres; "
                     "POSTGRES_PASSWORD=***; ***")  # fmt: skip


def test_the_threshold_and_the_reasons() -> None:
    assert weak_reason("abc12") == "is shorter than 6 characters"
    assert weak_reason("482913") == "is a number of fewer than 10 digits"
    assert weak_reason("Example") == "is an ordinary word"
    assert weak_reason("sentry", {"sentry-db": "a service name"}) == "is part of a service name"
    assert weak_reason("hunter2") is None and weak_reason("changethis") is None
    redact = Redactor(["secret", "changethis"])
    assert redact("a secret: changethis") == "a secret: ***"
