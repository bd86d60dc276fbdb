"""What a test of the catalogue sees: the migrated schema and the seed's rows."""

from __future__ import annotations

import psycopg
import redis
from app.settings import CACHE_PORT


def count(db: psycopg.Connection, sql: str) -> int:
    row = db.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_the_migrations_ran_to_head(db: psycopg.Connection) -> None:
    assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0050",)]


def test_the_seed_rows_are_there(db: psycopg.Connection) -> None:
    assert count(db, "SELECT count(*) FROM product") == 400
    assert count(db, "SELECT count(*) FROM price") == 800
    assert count(db, "SELECT count(*) FROM currency") == 5
    assert db.execute("SELECT title FROM product WHERE sku = 'SKU-00007'").fetchone() == (
        "product 7",
    )


def test_a_test_may_write(db: psycopg.Connection) -> None:
    # rolled back (and its own id: a sequence is not): a run attached to a kept stack
    # sees what the jobs left, as the first run did
    with db.transaction(force_rollback=True):
        db.execute("INSERT INTO customer (id, email, name) VALUES (-1, 'a@example.com', 'A')")
        assert count(db, "SELECT count(*) FROM customer") == 1


def test_the_cache_is_seeded() -> None:
    cache = redis.Redis(port=int(CACHE_PORT), decode_responses=True)
    assert cache.get("config:currency") == "EUR"
    cache.close()
