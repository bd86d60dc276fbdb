"""The catalogue's tests share one connection; with CATALOG_DUMP set, the whole cluster
(every database's schema and rows, the roles) and every Redis key are written there
first, as the stack came up, before any test changed anything."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from app.settings import CACHE_PORT, DB_PORT

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session", autouse=True)
def stack(pyairtable_api: object) -> None:
    target = os.environ.get("CATALOG_DUMP")
    if not target:
        return
    env = {**os.environ, "PGPASSWORD": "catalog-secret"}
    dump = subprocess.run(
        [str(PG_BIN / "pg_dumpall"), "-h", "127.0.0.1", "-p", DB_PORT, "-U", "catalog",
         "--no-role-passwords", "--restrict-key=catalog"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout  # fmt: skip
    cache = redis.Redis(port=int(CACHE_PORT))
    keys = sorted(cache.scan_iter())
    dump += "\n-- redis\n" + "\n".join(f"{k!r} {cache.dump(k)!r}" for k in keys)
    cache.close()
    Path(target).write_text(dump)


@pytest.fixture(scope="session")
def db(stack: None) -> Iterator[psycopg.Connection]:
    with psycopg.connect(
        f"postgresql://catalog:catalog-secret@127.0.0.1:{DB_PORT}/catalog", autocommit=True
    ) as conn:
        yield conn
