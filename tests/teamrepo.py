"""A service team's repo, generated: PostgreSQL, Redis, a migration job that also seeds
both, and an API (the stand-in) that is healthy only while both answer. Its test
files record when each test held the stack (``spans.jsonl``), from inside the tests."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conftest import Project

MIGRATE = """
import os, psycopg, redis
with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
    conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text)")
    conn.execute("INSERT INTO items (name) VALUES ('seed')")
redis.Redis.from_url(os.environ["REDIS_URL"]).set("config", "seed")
"""

# An autouse fixture in the project's conftest: the span of each test, from before its
# first function fixture to after its last teardown (a fault test's heal included).
SPANS = """
import json, os, pathlib, time
import pytest

SPANS = pathlib.Path(__file__).parent / "spans.jsonl"


@pytest.fixture(autouse=True)
def span(request):
    start = time.time()
    yield
    line = json.dumps({
        "test": request.node.name,
        "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
        "start": start,
        "end": time.time(),
    })
    with SPANS.open("a") as f:
        f.write(line + "\\n")
"""


def team_repo(project: Project, db: int, cache: int, api: int) -> None:
    """The repo with literal ports."""
    write_team_repo(project.path, str(db), str(cache), str(api))
    project.pytester.makeconftest(SPANS)


def write_team_repo(root: Path, db: str, cache: str, api: str) -> None:
    """The repo's files; a port may be a variable with a default (``${DB_PORT:-5432}``),
    used wherever the port is (ports, environment, command, probe), as real repos do."""
    (root / "migrate.py").write_text(MIGRATE)
    dsn = f"postgresql://team:pw-team@127.0.0.1:{db}/team"
    redis_url = f"redis://127.0.0.1:{cache}/0"
    (root / "docker-compose.yml").write_text(
        textwrap.dedent(f"""
        services:
          db:
            image: postgres:16
            environment: {{POSTGRES_USER: team, POSTGRES_PASSWORD: pw-team, POSTGRES_DB: team}}
            ports: ["{db}:5432"]
          cache:
            image: redis:7
            ports: ["{cache}:6379"]
          migrate:
            image: example/api
            depends_on:
              db: {{condition: service_healthy}}
              cache: {{condition: service_healthy}}
            x-pyairtable:
              local:
                command: [python, migrate.py]
                env: {{DATABASE_URL: "{dsn}", REDIS_URL: "{redis_url}"}}
          api:
            image: example/api
            ports: ["{api}:8000"]
            depends_on: {{migrate: {{condition: service_completed_successfully}}}}
            x-pyairtable:
              local:
                command: python -m pytest_pyairtable.standin --name api --port {api}
                env: {{DATABASE_URL: "{dsn}", REDIS_URL: "{redis_url}"}}
              probe: {{http: "http://127.0.0.1:{api}/health"}}
    """)
    )


def spans(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / "spans.jsonl").read_text().splitlines()]


def overlapping(spans_: list[dict[str, Any]], name_part: str) -> list[tuple[str, str]]:
    """Pairs (a test whose name contains ``name_part``, another test) whose spans overlap."""
    pairs = []
    for alone in (s for s in spans_ if name_part in s["test"]):
        for other in spans_:
            if (
                other is not alone
                and other["start"] < alone["end"]
                and alone["start"] < other["end"]
            ):
                pairs.append((alone["test"], other["test"]))
    return pairs
