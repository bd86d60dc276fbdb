"""The redaction layer: what it masks by pattern, what it leaves, and the reprs of the
public objects (a failing assert or ``pytest -l`` prints them)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_pyairtable.engine.handle import Handle
from pytest_pyairtable.engine.run import ServiceRun
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.session.kept import KeptService, KeptStack, fingerprint
from pytest_pyairtable.support.redact import MASK, Redactor, is_secret_name, mask_patterns, mask_url

MASKED = [
    ("DATABASE_URL=postgresql://app:pw-1@db:5432/app", "pw-1"),
    ("postgresql://app:p@ss-2@db/app", "ss-2"),  # an unencoded @ in the password
    ("redis://:pw-3@127.0.0.1:6379/0", "pw-3"),
    ("see https://user:pw-4@example.com/x and more", "pw-4"),
    ("redis-server --requirepass pw-5 --port 1", "pw-5"),
    ("app --password=pw-6", "pw-6"),
    ("app --token pw-7", "pw-7"),
    ("app --api-key=pw-8", "pw-8"),
    ("('--token', 'pw-9')", "pw-9"),  # an argv in a repr
    ("redis-server --masterauth pw-10", "pw-10"),
    ("host=db password=pw-11 dbname=x", "pw-11"),
    ("GET /x?token=pw-12&page=1", "pw-12"),
    ("DB_PASSWORD=pw-13", "pw-13"),
    ("{'JWT_SECRET': 'pw-14', 'USER': 'bob'}", "pw-14"),
    ('{"api_token": "pw-\\"15"}', "pw-"),
    ("POSTGRES_PASSWORD: pw-16", "pw-16"),
    ("SMTP_PASS=pw-17", "pw-17"),
    ("REDIS_AUTH=pw-18", "pw-18"),
    # after a key that is not secret (once taken as that key's value, and shown)
    ("X: JWT_SECRET: pw-19", "pw-19"),
    ("env: API_TOKEN: pw-20 (from .env)", "pw-20"),
    ("PGOPTIONS=password=pw-21", "pw-21"),
    ("opts=x,db_password=pw-22", "pw-22"),
    ("{'a': 'API_TOKEN': 'pw-23'}", "pw-23"),
    ('"a": "db_password": "pw-24"', "pw-24"),
    ("X=password=SECRET_KEY: pw-25", "pw-25"),  # one mask must not hide the next key
]
KEPT = [
    "initdb --auth-local=trust -A scram-sha-256",
    "http://user@host/path",
    "no password given, --no-password --host db",
    "primary key: id",
    "PASSWORD_MIN_LENGTH",
    "tier 1  postgres  needs: -",
]


@pytest.mark.parametrize(("text", "secret"), MASKED)
def test_patterns_mask_secrets_without_knowing_them(text: str, secret: str) -> None:
    shown = mask_patterns(text)
    assert secret not in shown and MASK in shown


@pytest.mark.parametrize("text", KEPT)
def test_patterns_leave_ordinary_text(text: str) -> None:
    assert mask_patterns(text) == text


def test_known_values_are_masked_also_percent_encoded() -> None:
    redact = Redactor(["s3cr/t@x", "true", "ab"])  # too short or too common: never masked
    assert redact("a s3cr/t@x b s3cr%2Ft%40x true ab") == "a *** b *** true ab"


def test_secret_names() -> None:
    for name in ("DB_PASSWORD", "api_key", "GITHUB_TOKEN", "JWT_SECRET", "DB_PASS", "pw"):
        assert is_secret_name(name), name
    for name in ("PASSPORT_OFFICE", "USER", "PORT", "PWD", "AUTHOR"):
        assert not is_secret_name(name), name


def test_mask_url_keeps_the_rest() -> None:
    assert mask_url("postgresql://app:pw@db:5432/app") == "postgresql://app:***@db:5432/app"
    assert mask_url("http://db:5432") == "http://db:5432"


SECRETS = {
    "POSTGRES_PASSWORD": "pg-pw-21",
    "REDIS_PASSWORD": "redis-pw-22",
    "API_TOKEN": "tok-23",
}


def test_public_objects_show_no_secret_in_their_repr(tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("""
services:
  db:
    image: postgres:16
    environment: {POSTGRES_PASSWORD: "${POSTGRES_PASSWORD}"}
    ports: ["5432:5432"]
  cache:
    image: redis:7
    command: redis-server --requirepass ${REDIS_PASSWORD}
  api:
    image: x
    command: ["serve", "--auth-token", "cli-tok-24"]
    environment:
      DATABASE_URL: postgresql://app:url-pw-25@db/app
      API_TOKEN: ${API_TOKEN}
    healthcheck: {test: ["CMD", "check", "--password", "hc-pw-26"]}
    x-pyairtable:
      url: http://svc:url-pw-27@127.0.0.1:8000
      local: {command: [serve], env: {WORKER_SECRET: local-28}}
x-settings: {signing_key: x-key-29}
""")
    stack = load_stack(compose, environ=SECRETS)
    planted = [*SECRETS.values(), "cli-tok-24", "url-pw-25", "hc-pw-26", "url-pw-27", "local-28",
               "x-key-29"]  # fmt: skip
    db = stack.services["db"]
    handle = Handle(
        "db", 1, "127.0.0.1", 5432, db.probe.target, 0.1, None, {"dsn": db.probe.target}
    )
    kept = KeptStack("f", "r", "local", {}, str(compose),
                     {"db": KeptService(db, handle, False, 0.0, {})}, stack.secret_values())  # fmt: skip
    shown = [stack, *stack.services.values(), handle, db.probe, db.local, kept,
             ServiceRun(stack.services["api"], 1), stack.services["api"].healthcheck]  # fmt: skip
    for obj in shown:
        text = repr(obj)
        leaked = [s for s in planted if s in text]
        assert not leaked, (type(obj).__name__, leaked, text[:300])
    assert handle.url == "postgresql://postgres:pg-pw-21@127.0.0.1:5432/postgres"  # usable
    assert "postgresql://postgres:***@127.0.0.1:5432/postgres" in repr(handle)
    assert set(planted) <= set(stack.secret_values())


def test_a_changed_password_changes_the_fingerprint(tmp_path: Path) -> None:
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services:\n  db: {image: postgres, environment: [POSTGRES_PASSWORD]}\n")
    one = load_stack(compose, environ={"POSTGRES_PASSWORD": "one-pw"})
    two = load_stack(compose, environ={"POSTGRES_PASSWORD": "two-pw"})
    assert repr(one.services["db"]) == repr(two.services["db"])  # both masked
    assert fingerprint(one, "local") != fingerprint(two, "local")
    same = dataclasses.replace(one)
    assert fingerprint(one, "local") == fingerprint(same, "local")


ADVERSARIAL = [
    "--token" * 50_000,  # took 500 s with a flag pattern that backtracked
    "a-" * 100_000,
    "x://" + "b" * 100_000,
    "a://b:c" * 30_000,
    "PASSWORD=x " * 30_000,
    "'a':'" * 50_000,
    "A: " * 100_000,
    "TOKEN: " * 100_000,
    "'TOKEN': '" + "\\" * 100_000,  # exponential: 40 took ~20 s (a backslash read two ways)
    "'a': " * 50_000,
    "password=" * 50_000,
]


def test_patterns_take_linear_time_on_adversarial_text() -> None:
    """A service may print anything: masking its log must never hang (a CPU-time bound,
    a hang detector; each of these takes milliseconds)."""
    import time

    for text in ADVERSARIAL:
        began = time.process_time()
        mask_patterns(text)
        assert time.process_time() - began < 15, text[:40]


SECRET = st.text(alphabet="abcdefghijkXYZ0123456789", min_size=8, max_size=16)
FORMS = ["--password {s}", "--token={s}", "password={s}", "postgresql://u:{s}@h:5432/db",
         "'API_TOKEN': '{s}'", '"db_password": "{s}"', "JWT_SECRET: {s}", "('--api-key', '{s}')"]  # fmt: skip
AROUND = st.text(alphabet="abc XYZ:=,/\n'\"-", max_size=30)


@given(secret=SECRET, form=st.sampled_from(FORMS), before=AROUND, after=AROUND)
def test_a_secret_in_any_known_form_never_survives(
    secret: str, form: str, before: str, after: str
) -> None:
    text = f"{before} {form.format(s=secret)}\n{after}"
    assert secret not in mask_patterns(text)
