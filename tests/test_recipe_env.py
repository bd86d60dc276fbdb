"""The built-in PostgreSQL and Redis recipes read an image's environment as its own
entrypoint does: names quoted for the server, ``*_FILE`` secrets, and what the image
refuses, refused at once (real servers, real files)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from stackrun import free_port

from conftest import LeakCheck, unique_run_id
from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.model.imageenv import quote_identifier
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.support.errors import ConfigError, ServiceError


def _compose(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "docker-compose.yml"
    path.write_text(textwrap.dedent(body))
    return path


def _boot(path: Path, name: str = "db") -> tuple[Orchestrator, str]:
    orch = Orchestrator(load_stack(path, environ={}), LocalBackend(run_id=unique_run_id("env")))
    orch.start()
    try:
        return orch, orch.wait(name).url or ""
    except BaseException:
        orch.stop()
        raise


def test_names_with_quotes_and_a_password_from_a_mounted_file(
    tmp_path: Path, no_leaks: LeakCheck
) -> None:
    import psycopg

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "pw").write_text("p'w \"x\\ %s;\n\n")  # trailing line breaks are dropped
    path = _compose(
        tmp_path,
        f"""
        services:
          db:
            image: postgres:16
            environment:
              POSTGRES_USER: 'o ne/two@x'
              POSTGRES_DB: 'a"b; drop database postgres; --'
              POSTGRES_PASSWORD_FILE: /run/secrets/pw
            volumes: ["./secrets:/run/secrets:ro"]
            ports: ["{free_port()}:5432"]
        """,
    )
    orch, url = _boot(path)
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("select current_database(), current_user").fetchone()
        assert row == ('a"b; drop database postgres; --', "o ne/two@x")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(url.replace("%25s", "%25t"), connect_timeout=5).close()
    finally:
        orch.stop()


def test_trust_without_a_password_as_the_image_allows(tmp_path: Path, no_leaks: LeakCheck) -> None:
    import psycopg

    path = _compose(
        tmp_path,
        f"""
        services:
          db:
            image: postgres:16
            environment: {{POSTGRES_HOST_AUTH_METHOD: trust, POSTGRES_USER: ""}}
            ports: ["{free_port()}:5432"]
        """,
    )
    orch, url = _boot(path)
    try:
        with psycopg.connect(url) as conn:  # an empty POSTGRES_USER is the default user
            assert conn.execute("select current_user").fetchone() == ("postgres",)
    finally:
        orch.stop()


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ('{POSTGRES_PASSWORD: ""}', "refuses to start without it"),
        ('{POSTGRES_USER: "o\'ne", POSTGRES_PASSWORD: x}', "which PostgreSQL's initdb refuses"),
        ('{POSTGRES_DB: "a\\nb", POSTGRES_PASSWORD: x}', "POSTGRES_DB holds a line break"),
    ],
)
def test_what_the_image_refuses_is_refused_before_anything_runs(
    tmp_path: Path, no_leaks: LeakCheck, environment: str, expected: str
) -> None:
    path = _compose(
        tmp_path,
        f"""
        services:
          db:
            image: postgres:16
            environment: {environment}
            ports: ["{free_port()}:5432"]
        """,
    )
    with pytest.raises(ServiceError) as info:
        _boot(path)
    message = str(info.value)
    assert expected in message and "Fix:" in message
    assert "did not become ready" not in message  # not a wait that ran out


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        (
            "{POSTGRES_PASSWORD: x, POSTGRES_PASSWORD_FILE: /run/secrets/pw}",
            "both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set",
        ),
        (
            "{POSTGRES_PASSWORD_FILE: /nonexistent/pw}",
            "POSTGRES_PASSWORD_FILE names /nonexistent/pw",
        ),
        ("{POSTGRES_DB_FILE: /run/secrets/big, POSTGRES_PASSWORD: x}", "holds more than 64 KiB"),
        ("{REDIS_PASSWORD_FILE: /nonexistent/pw}", "REDIS_PASSWORD_FILE names /nonexistent/pw"),
    ],
)
def test_secret_files_are_read_at_load_with_the_cause(
    tmp_path: Path, environment: str, expected: str
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "big").write_bytes(b"x" * (65 * 1024))
    image = "redis:7" if "REDIS" in environment else "postgres:16"
    path = _compose(
        tmp_path,
        f"""
        services:
          db:
            image: {image}
            environment: {environment}
            volumes: ["./secrets:/run/secrets:ro"]
        """,
    )
    with pytest.raises(ConfigError, match="service 'db': ") as info:
        load_stack(path, environ={})
    assert expected in str(info.value) and "Fix:" in str(info.value)


def test_redis_password_from_a_file(tmp_path: Path, no_leaks: LeakCheck) -> None:
    import redis

    (tmp_path / "pw").write_text('r"e d\\is\n')
    path = _compose(
        tmp_path,
        f"""
        services:
          cache:
            image: bitnami/redis:7
            environment: {{REDIS_PASSWORD_FILE: {tmp_path / "pw"}}}
            ports: ["{free_port()}:6379"]
        """,
    )
    orch, url = _boot(path, "cache")
    try:
        client = redis.Redis.from_url(url)
        try:
            assert client.ping()
        finally:
            client.close()
    finally:
        orch.stop()


@pytest.mark.parametrize("name", ['a"b', '""', "plain", 'x""y', "ünï cödé"])
def test_identifier_quoting_round_trips(name: str) -> None:
    quoted = quote_identifier(name)
    assert quoted.startswith('"') and quoted.endswith('"')
    assert quoted[1:-1].replace('""', '"') == name
