"""Masking by where a secret stands and by its value, never names, paths or code: a
password equal to a name of the stack (``POSTGRES_PASSWORD: postgres``) is masked after
its name and in its URLs, and the service, image and project keep their names; the
structured outputs are masked inside their data, so they parse."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.support.redact import MASK, Redactor, mask_patterns, weak_reason

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


def shapes_table() -> list[tuple[str, str, str]]:
    """The rows of the table in docs/reference.md: (shape, example, shown)."""
    text = (Path(__file__).parent.parent / "docs" / "reference.md").read_text()
    section = text.split("## Secrets in output", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 3 and cells[1].startswith("`"):
            examples, shown = re.findall(r"`([^`]+)`", cells[1]), re.findall(r"`([^`]+)`", cells[2])
            assert len(examples) == len(shown), line
            rows += [(cells[0], e, s) for e, s in zip(examples, shown, strict=True)]
    return rows


SHAPES = shapes_table()


def test_the_documented_table_lists_every_shape() -> None:
    assert len(SHAPES) >= 18
    assert {"mysql's glued `-p`", "`Authorization` header", "a passphrase"} <= {
        s for s, _, _ in SHAPES
    }


@pytest.mark.parametrize(("shape", "example", "shown"), SHAPES, ids=[s for s, _, _ in SHAPES])
def test_each_documented_shape(shape: str, example: str, shown: str) -> None:
    if "--showlocals" in shape:
        from pytest_pyairtable.frontends.pytest.masking import _local

        assert _local(example, Redactor()) == shown
    else:
        assert mask_patterns(example) == shown


def test_an_interpolation_message_shows_no_secret(tmp_path: Path) -> None:
    directory = project(tmp_path, """
        services:
          api:
            image: x
            environment:
              A: "${MISSING:?set it; the token was $API_TOKEN, the URL postgresql://u:$X@h/db}"
    """)  # fmt: skip
    (directory / ".env").write_text("API_TOKEN=tok-secret-123\nX=plain-pw-99\n")
    done = pyairtable(directory, "config")
    assert done.returncode == 2
    assert "MISSING (set it; the token was ***, the URL postgresql://u:***@h/db)" in done.stderr


ADVERSARIAL = [
    "mysql -p" * 50_000,
    "mysql\n-px " * 50_000,
    "Authorization: " * 50_000,
    "authorization=bearer " * 50_000,
    "https://hooks.x/" + "a/" * 100_000,
    "https://hook" * 50_000,
    "x-api-key: '" * 50_000,
    "password: \"'" * 50_000,
    "password='" * 50_000,
    'password="\\"' * 50_000,
    "redis://:" + "a" * 100_000 + "...",
    "a://b:" * 50_000 + "...",
    "abcdefgh..." * 50_000,
    "...abcdefgh" * 50_000,
    "a" * 200_000 + "..." + "h" * 200_000,
    "https://" + "0123456789abcdefXYZ" * 10_000 + "@h",
]


def test_new_shapes_take_linear_time_on_adversarial_text() -> None:
    """A CPU-time bound, a hang detector: each of these takes well under a second."""
    import time

    redact = Redactor(["abcdefghijkl", "hhhhhhhhhhhh" + "a" * 40, "px px px"])
    for text in ADVERSARIAL:
        began = time.process_time()
        redact(text)
        assert time.process_time() - began < 15, text[:40]


def test_a_secret_after_a_flag_in_an_argv_is_masked_in_the_data() -> None:
    redact = Redactor(["postgres"], {"postgres": "a service name"})
    doc = {"command": ["redis-server", "--requirepass", "postgres", "--port", "1"],
           "test": ["CMD", "mysqladmin", "-uroot", "-pexample"], "image": "postgres:15"}  # fmt: skip
    assert redact.data(doc) == {
        "command": ["redis-server", "--requirepass", MASK, "--port", "1"],
        "test": ["CMD", "mysqladmin", "-uroot", "-p***"],
        "image": "postgres:15",
    }


def test_a_token_as_a_urls_user_name_in_the_header_and_a_handles_repr() -> None:
    from pytest_pyairtable.engine.handle import Handle
    from pytest_pyairtable.support.redact import mask_url

    dsn = "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/2"
    assert mask_url(dsn) == "https://***@o1.ingest.sentry.io/2"
    assert mask_url("http://user@host/x") == "http://user@host/x"
    handle = Handle("sentry", 1, "o1.ingest.sentry.io", 443, dsn, 0.1, None, {})
    assert "0123456789abcdef" not in repr(handle) and "https://***@o1" in repr(handle)


def test_a_fragment_left_by_a_truncation_is_masked_unless_it_is_a_name() -> None:
    redact = Redactor(["zq8Kx2mPw7Lr", "postgres-pw-1"], {"postgres": "a service name"})
    assert redact("'abc zq8Kx...' and '...mPw7Lr'") == "'abc ***...' and '...***'"
    assert redact("waiting for postgres...") == "waiting for postgres..."
    assert redact("ab...cd") == "ab...cd"  # under 3 characters: too little to matter
