"""Against a real PostgreSQL and Redis (our local backend's): a reset that keeps the test
process's own pool connected, refuses to end its sessions, and an xdist worker's copies
made, restored and dropped without touching what is not provably ours."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis
from psycopg.conninfo import make_conninfo
from stackrun import free_port

from conftest import unique_run_id
from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.engine.orchestrator import Handle, Orchestrator
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.state import pgcopies, pginplace
from pytest_pyairtable.state.pgrestore import restore, restore_database
from pytest_pyairtable.state.pgsessions import Owners
from pytest_pyairtable.state.pgsnap import PostgresSnapshot
from pytest_pyairtable.state.redissnap import RedisSnapshot
from pytest_pyairtable.support.errors import ResetError

sqlalchemy = pytest.importorskip("sqlalchemy")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Handle]]:
    path = tmp_path_factory.mktemp("copies") / "docker-compose.yml"
    path.write_text(
        textwrap.dedent(f"""
        services:
          db:
            image: postgres:16
            environment: {{POSTGRES_USER: boss, POSTGRES_PASSWORD: pw-copies, POSTGRES_DB: app}}
            ports: ["{free_port()}:5432"]
          cache:
            image: redis:7
            ports: ["{free_port()}:6379"]
    """)
    )
    orch = Orchestrator(load_stack(path, environ={}), LocalBackend(run_id=unique_run_id("copy")))
    try:
        orch.start(["db", "cache"])
        yield {name: orch.wait(name) for name in ("db", "cache")}
    finally:
        orch.stop()


def dsn(handle: Handle, db: str | None = None) -> str:
    return make_conninfo(handle.url, **({"dbname": db} if db else {}))


@pytest.fixture
def pg(servers: dict[str, Handle]) -> Iterator[Handle]:
    """The server with a migrated, seeded ``app``; left with only that after the test."""
    handle = servers["db"]
    with psycopg.connect(dsn(handle), autocommit=True) as conn:
        conn.execute("CREATE TABLE customer (id serial PRIMARY KEY, email text UNIQUE)")
        conn.execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customer)"
        )
        conn.execute("INSERT INTO customer (email) VALUES ('seed@example.com')")
    yield handle
    with psycopg.connect(dsn(handle, "postgres"), autocommit=True) as conn:
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname NOT IN "
            "('postgres', 'template0', 'template1', 'app')"
        ).fetchall():
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute("DROP DATABASE app WITH (FORCE)")
        conn.execute("CREATE DATABASE app")


@pytest.fixture
def snapshot(pg: Handle) -> Iterator[PostgresSnapshot]:
    made = PostgresSnapshot("db", pg.url, "key-copies")
    made.take()
    yield made
    made.close()


@pytest.fixture
def engine(pg: Handle) -> Iterator[Any]:
    """The test process's own pooled engine, as an app's tests make it: no pre-ping, so a
    connection a reset ended fails the next query."""
    url = pg.url.replace("postgresql://", "postgresql+psycopg://", 1)
    made = sqlalchemy.create_engine(url, pool_size=3)
    yield made
    made.dispose()


def backend_pid(conn: Any) -> int:
    return int(conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar_one())


def test_a_reset_keeps_the_test_process_pool_and_open_session(
    snapshot: PostgresSnapshot, engine: Any
) -> None:
    from sqlalchemy.orm import Session

    own = Owners([__import__("os").getpid()])
    with engine.connect() as conn:
        pid = backend_pid(conn)
        conn.execute(sqlalchemy.text("INSERT INTO customer (email) VALUES ('dirt@example.com')"))
        conn.commit()
    session = Session(engine)  # a long-lived ORM session, idle in a transaction
    assert session.execute(sqlalchemy.text("SELECT count(*) FROM customer")).scalar_one() == 2
    assert restore(snapshot, own) == {"app": "in place: 1 table(s)"}
    # the same open transaction goes on, and sees the restored rows (READ COMMITTED)
    assert session.execute(sqlalchemy.text("SELECT count(*) FROM customer")).scalar_one() == 1
    session.close()
    with engine.connect() as conn:
        assert backend_pid(conn) == pid  # the pool's connection is the one from before
        new = conn.execute(
            sqlalchemy.text("INSERT INTO customer (email) VALUES ('x') RETURNING id")
        ).scalar_one()
        conn.commit()
    assert new == 2  # the sequence was put back too
    assert restore(snapshot, own) == {"app": "in place: 1 table(s)"}
    assert restore(snapshot, own) == {"app": "in place: 0 table(s)"}  # nothing changed since


def test_a_schema_change_is_not_swapped_over_the_test_process_connection(
    snapshot: PostgresSnapshot, engine: Any
) -> None:
    own = Owners([__import__("os").getpid()])
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text("CREATE TABLE added_by_a_test (n int)"))
        conn.commit()
        pid = backend_pid(conn)
    with pytest.raises(ResetError) as failure:
        restore(snapshot, own)
    text = str(failure.value)
    assert "its schema changed since the snapshot" in text
    assert f"session {pid}" in text and "the test process's own connection" in text
    assert "Fix:" in text
    with engine.connect() as conn:
        assert backend_pid(conn) == pid  # not ended
    engine.dispose()  # the test lets go of its connections: now the swap may run
    assert restore(snapshot, own) == {"app": "swapped"}
    with psycopg.connect(dsn(snapshot_handle(snapshot))) as conn:
        assert conn.execute("SELECT to_regclass('added_by_a_test')").fetchone() == (None,)


def snapshot_handle(snapshot: PostgresSnapshot) -> Handle:
    return Handle("db", 1, "127.0.0.1", None, snapshot.dsn, 0.0, None)


def test_an_uncommitted_write_of_the_test_is_named_not_waited_on_forever(
    snapshot: PostgresSnapshot, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pginplace, "LOCK_TIMEOUT", "200ms")
    own = Owners([__import__("os").getpid()])
    conn = engine.connect()
    conn.execute(sqlalchemy.text("INSERT INTO customer (email) VALUES ('pending')"))
    pid = backend_pid(conn)  # the transaction stays open
    with pytest.raises(ResetError) as failure:
        restore(snapshot, own)
    assert f"session {pid}" in str(failure.value)
    assert "the test process's own connection" in str(failure.value)
    assert "commit or roll back" in str(failure.value)
    conn.rollback()
    conn.close()
    assert restore(snapshot, own)["app"].startswith("in place")


def test_worker_copies_are_made_restored_and_dropped(
    snapshot: PostgresSnapshot, pg: Handle
) -> None:
    (db,) = [d for d in snapshot.databases if d.name == "app"]
    run = unique_run_id("workers")
    for slot in ("gw0", "gw1"):
        pgcopies.make(snapshot, db, f"app_{slot}", pgcopies.mark(run, slot, "app"))
    with psycopg.connect(dsn(pg, "app_gw0"), autocommit=True) as worker:
        assert worker.execute("SELECT email FROM customer").fetchall() == [("seed@example.com",)]
        worker.execute("INSERT INTO customer (email) VALUES ('gw0 only')")
        with psycopg.connect(dsn(pg, "app_gw1")) as other:
            assert other.execute("SELECT count(*) FROM customer").fetchone() == (1,)
        # the worker stays connected through its reset: in place
        way = restore_database(snapshot, db, "app_gw0", Owners([]), copy=True)
        assert way == "in place: 1 table(s)"
        assert worker.execute("SELECT count(*) FROM customer").fetchone() == (1,)
        worker.execute("CREATE TABLE scratch (n int)")  # a schema change: only a new copy
        with pytest.raises(ResetError, match="a worker's copy is its test process's alone"):
            restore_database(snapshot, db, "app_gw0", Owners([]), copy=True)
    assert restore_database(snapshot, db, "app_gw0", Owners([]), copy=True) == "copied anew"
    assert pgcopies.drop(snapshot, ["app_gw0", "app_gw1", "app"], "another-run") == []
    assert sorted(pgcopies.drop(snapshot, ["app_gw0", "app_gw1", "app"], run)) == [
        "app_gw0",
        "app_gw1",
    ]
    assert databases(pg) >= {"app"} and not databases(pg) & {"app_gw0", "app_gw1"}


def databases(pg: Handle) -> set[str]:
    with psycopg.connect(dsn(pg, "postgres")) as conn:
        return {name for (name,) in conn.execute("SELECT datname FROM pg_database").fetchall()}


def test_nothing_that_is_not_provably_ours_is_dropped(
    snapshot: PostgresSnapshot, pg: Handle
) -> None:
    (db,) = [d for d in snapshot.databases if d.name == "app"]
    live = pgcopies.mark("a-live-run", "gw1", "app")  # this process: alive
    dead = {**pgcopies.mark("a-dead-run", "gw2", "app"), "pid": 2**22 + 1, "ticks": 1}
    with psycopg.connect(dsn(pg, "postgres"), autocommit=True) as admin:
        admin.execute("CREATE DATABASE app_gw0")  # the user's own, by chance of its name
        admin.execute("CREATE DATABASE app_gw1")
        admin.execute(f"COMMENT ON DATABASE app_gw1 IS '{json.dumps(live)}'")
        admin.execute("CREATE DATABASE app_gw2")
        admin.execute(f"COMMENT ON DATABASE app_gw2 IS '{json.dumps(dead)}'")
    mine = pgcopies.mark(unique_run_id("mine"), "gw0", "app")
    with pytest.raises(ResetError, match=r"'app_gw0'.*exists \(not made by this tool\)"):
        pgcopies.make(snapshot, db, "app_gw0", mine)
    with pytest.raises(ResetError, match=r"'app_gw1'.*another live run's copy"):
        pgcopies.make(snapshot, db, "app_gw1", {**mine, "slot": "gw1"})
    assert pgcopies.sweep(snapshot) == ["app_gw2"]  # its run's process is gone
    assert {"app_gw0", "app_gw1"} <= databases(pg) and "app_gw2" not in databases(pg)
    assert pgcopies.drop(snapshot, ["app_gw0", "app_gw1"], mine["run"]) == []


def test_redis_worker_databases(servers: dict[str, Handle], closing: Callable[[Any], Any]) -> None:
    url = servers["cache"].url
    shared = redis.Redis.from_url(url)
    shared.set("config", "seed")
    snapshot = closing(RedisSnapshot("cache", url, "key-workers"))
    snapshot.take()
    own = redis.Redis.from_url(url.rsplit("/", 1)[0] + "/15")
    try:
        snapshot.copy_into({0: 15}, fresh=True)
        assert own.get("config") == b"seed"
        own.set("written by the worker", 1)
        snapshot.copy_into({0: 15}, fresh=False)  # its reset
        assert own.keys() == [b"config"]
        with pytest.raises(ResetError, match="holds keys this run did not put there"):
            snapshot.copy_into({0: 15}, fresh=True)  # not empty: not ours to flush
        snapshot.flush([15])
        assert own.dbsize() == 0 and shared.get("config") == b"seed"
    finally:
        shared.flushall()


@pytest.fixture
def closing() -> Iterator[Callable[[Any], Any]]:
    made: list[Any] = []

    def register(thing: Any) -> Any:
        made.append(thing)
        return thing

    yield register
    for thing in made:
        thing.close()
