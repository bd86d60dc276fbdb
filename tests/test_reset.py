"""State reset against a real PostgreSQL and Redis (started by our own local backend):
what is restored, what is not, and what a connected app sees."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg import sql
from psycopg.conninfo import make_conninfo
from stackrun import free_port

from conftest import unique_run_id
from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.engine.orchestrator import Handle, Orchestrator
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.state.pgrestore import restore
from pytest_pyairtable.state.pgsessions import Owners
from pytest_pyairtable.state.pgsnap import PostgresSnapshot
from pytest_pyairtable.state.redissnap import RedisSnapshot
from pytest_pyairtable.state.reset import Resets, choose, snapshot_file
from pytest_pyairtable.support.errors import ResetError, UnknownServiceError


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrator]:
    path = tmp_path_factory.mktemp("reset") / "docker-compose.yml"
    path.write_text(
        textwrap.dedent(f"""
        services:
          db:
            image: postgres:16
            environment: {{POSTGRES_USER: boss, POSTGRES_PASSWORD: pw-reset, POSTGRES_DB: app}}
            ports: ["{free_port()}:5432"]
          cache:
            image: redis:7
            command: redis-server --requirepass pw-redis-reset
            ports: ["{free_port()}:6379"]
          api:
            image: x
            x-pyairtable: {{probe: {{http: "http://127.0.0.1:1/health"}}}}
    """)
    )
    orch = Orchestrator(load_stack(path, environ={}), LocalBackend(run_id=unique_run_id("reset")))
    try:
        orch.start(["db", "cache"])
        orch.wait("db")
        orch.wait("cache")
        yield orch
    finally:
        orch.stop()


@pytest.fixture(scope="module")
def servers(stack: Orchestrator) -> dict[str, Handle]:
    return {name: stack.handle(name) for name in ("db", "cache")}


def dsn(handle: Handle, db: str | None = None, **options: str) -> str:
    return make_conninfo(handle.url, **({"dbname": db} if db else {}), **options)


@pytest.fixture
def pg(servers: dict[str, Handle]) -> Iterator[Handle]:
    """The server, left as the test found it: only its own databases and roles."""
    handle = servers["db"]
    yield handle
    with psycopg.connect(dsn(handle, "postgres"), autocommit=True) as conn:
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname NOT IN "
            "('postgres', 'template0', 'template1', 'app')"
        ).fetchall():
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute("DROP DATABASE app WITH (FORCE)")
        conn.execute("CREATE DATABASE app")
        for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'r\\_%'"):
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def pg_snapshot(pg: Handle) -> Iterator[Callable[[str], PostgresSnapshot]]:
    """Makes snapshots of the server, each closed after the test, failed or not: a
    session left open would fail a later test with a ResourceWarning."""
    made: list[PostgresSnapshot] = []

    def make(key: str) -> PostgresSnapshot:
        made.append(PostgresSnapshot("db", pg.url, key))
        return made[-1]

    yield make
    for snapshot in made:
        snapshot.close()


@pytest.fixture
def closing() -> Iterator[Callable[[Any], Any]]:
    """Closes what a test registers after it, failed or not (Redis snapshots keep a
    connection; Resets keep their snapshots' sessions)."""
    made: list[Any] = []

    def register(thing: Any) -> Any:
        made.append(thing)
        return thing

    yield register
    for thing in made:
        if isinstance(thing, Resets):
            thing.join()
        else:
            thing.close()


@pytest.fixture
def cache(servers: dict[str, Handle]) -> Iterator[Handle]:
    yield servers["cache"]
    redis.Redis.from_url(servers["cache"].url).flushall()


def one(conn: Any, query: str) -> Any:
    return conn.execute(query).fetchone()[0]


def test_postgres_reset_swaps_a_changed_schema_back_while_an_app_is_connected(
    pg: Handle, pg_snapshot: Callable[[str], PostgresSnapshot]
) -> None:
    with psycopg.connect(dsn(pg, "postgres"), autocommit=True) as admin:
        admin.execute("CREATE ROLE r_app LOGIN PASSWORD 'pw-app'")
        admin.execute("CREATE DATABASE orders OWNER r_app")  # a second database
        admin.execute("ALTER DATABASE app SET search_path = shop, public")
        admin.execute("REVOKE ALL ON DATABASE app FROM PUBLIC")
        admin.execute("GRANT CONNECT ON DATABASE app TO r_app")
        admin.execute("COMMENT ON DATABASE app IS 'the shop'")
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA shop")
        conn.execute("CREATE EXTENSION citext")
        conn.execute("CREATE TABLE shop.items (id serial PRIMARY KEY, name citext)")
        conn.execute("INSERT INTO shop.items (name) VALUES ('seed')")
        conn.execute("GRANT USAGE ON SCHEMA shop TO r_app")
        conn.execute("GRANT SELECT ON shop.items TO r_app")
    with psycopg.connect(dsn(pg, "orders"), autocommit=True) as conn:
        conn.execute("CREATE TABLE placed (n int)")
    app = psycopg.connect(dsn(pg, user="r_app", password="pw-app"), autocommit=True)
    snapshot = pg_snapshot("key-1")
    assert snapshot.take() is True
    assert sorted(d.name for d in snapshot.databases) == ["app", "orders"]
    with pytest.raises(psycopg.errors.AdminShutdown):  # the snapshot ended its session once
        app.execute("SELECT 1")
    app = psycopg.connect(dsn(pg, user="r_app", password="pw-app"), autocommit=True)
    assert one(app, "SELECT count(*) FROM items") == 1  # search_path from the database

    with psycopg.connect(dsn(pg), autocommit=True) as conn:  # what tests do meanwhile
        conn.execute("INSERT INTO shop.items (name) VALUES ('dirty') RETURNING id")
        conn.execute("CREATE TABLE shop.later (n int)")
        conn.execute("DROP EXTENSION citext CASCADE")
    with psycopg.connect(dsn(pg, "postgres"), autocommit=True) as admin:
        admin.execute("CREATE ROLE r_later")
        admin.execute("CREATE DATABASE scratch")
        admin.execute("DROP DATABASE orders")
        admin.execute("ALTER DATABASE app SET search_path = public")
        admin.execute("GRANT CONNECT ON DATABASE app TO PUBLIC")

    # the schema changed: only the swap restores it, and the app's session is not the
    # test process's (no process is named as the test's), so it is ended
    assert restore(snapshot, Owners(())) == {"app": "swapped", "orders": "swapped"}
    with pytest.raises(psycopg.errors.AdminShutdown):  # its pool reconnects, as after a failover
        app.execute("SELECT 1")
    app = psycopg.connect(dsn(pg, user="r_app", password="pw-app"), autocommit=True)
    assert app.execute("SELECT id, name FROM items").fetchall() == [(1, "seed")]
    assert one(app, "SELECT to_regclass('shop.later')") is None
    assert one(app, "SELECT extname FROM pg_extension WHERE extname = 'citext'") == "citext"
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        assert one(conn, "SELECT nextval('shop.items_id_seq')") == 2  # the sequence too
    with psycopg.connect(dsn(pg, "postgres"), autocommit=True) as admin:
        row = admin.execute(
            "SELECT pg_get_userbyid(datdba), datacl::text[], shobj_description(oid, 'pg_database') "
            "FROM pg_database WHERE datname = 'app'"
        ).fetchone()
        assert row == ("boss", ["boss=CTc/boss", "r_app=c/boss"], "the shop")
        assert (
            one(admin, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'orders'")
            == "r_app"
        )
        # Not part of a database: roles, and databases made after the snapshot.
        assert one(admin, "SELECT count(*) FROM pg_roles WHERE rolname = 'r_later'") == 1
        assert one(admin, "SELECT count(*) FROM pg_database WHERE datname = 'scratch'") == 1
    assert restore(snapshot, Owners(()), strategy="swap")["app"] == "swapped"  # a new spare
    app.close()
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        assert one(conn, "SELECT count(*) FROM shop.items") == 1
    snapshot.discard()


@pytest.mark.parametrize("strategy", ["auto", "swap"])
def test_an_app_querying_through_resets_sees_only_the_documented_errors(
    pg: Handle, pg_snapshot: Callable[[str], PostgresSnapshot], strategy: str
) -> None:
    """A client with a reconnect-on-error pool, querying in a loop from its own thread
    while resets happen. In place (the default): it notices nothing, on one connection.
    The swap: every error is one an app sees when an operator ends its session (57P01,
    or the connection closed before that message came), or, connecting during the swap,
    that the database takes no connections (55000) or was just renamed (3D000), which a
    retry gets past."""
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        conn.execute("CREATE TABLE hits (n int)")
        conn.execute("INSERT INTO hits VALUES (1)")
    snapshot = pg_snapshot("key-app")
    snapshot.take()
    stop = threading.Event()
    errors: list[str] = []
    counts: list[int] = []
    connections: set[int] = set()
    ways: list[str] = []

    def app() -> None:
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(dsn(pg), autocommit=True, connect_timeout=5)
                    connections.add(conn.info.backend_pid)
                counts.append(one(conn, "SELECT count(*) FROM hits"))
                conn.execute("INSERT INTO hits VALUES (2)")
            except psycopg.Error as exc:
                errors.append(exc.sqlstate or sqlstate_of_connect_error(str(exc)))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    thread = threading.Thread(target=app, daemon=True)
    thread.start()
    try:
        for _ in range(5):
            before = len(counts)
            deadline = time.monotonic() + 20
            while len(counts) < before + 5:  # the app got going again since the last reset
                assert time.monotonic() < deadline
                time.sleep(0.005)
            ways.append(restore(snapshot, Owners(()), strategy=strategy)["app"])
            with psycopg.connect(dsn(pg), autocommit=True) as conn:
                # restored: the app's rows of after the restore began come after it
                assert one(conn, "SELECT count(*) FROM hits WHERE n = 1") == 1
    finally:
        stop.set()
        thread.join(20)
    if strategy == "auto":
        assert errors == [] and len(connections) == 1, (errors, connections)
        assert all(way == "in place: 1 table(s)" for way in ways), ways
    else:
        assert errors, "the app never noticed a reset"
        assert set(errors) <= {"57P01", "closed", "55000", "3D000"}, errors
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        assert one(conn, "SELECT min(n) FROM hits") == 1
    snapshot.discard()


def sqlstate_of_connect_error(text: str) -> str:
    """psycopg reports a failed connection without its SQLSTATE: tell it by its text."""
    if "is not currently accepting connections" in text:
        return "55000"
    if "does not exist" in text and "just been dropped or renamed" in text:
        return "3D000"
    if "server closed the connection unexpectedly" in text:
        return "closed"  # ended by pg_terminate_backend before its 57P01 arrived
    return text


def test_a_snapshot_is_found_again_by_its_key_and_taken_anew_under_another(
    pg: Handle, pg_snapshot: Callable[[str], PostgresSnapshot]
) -> None:
    """A kept stack's later run finds its snapshot; a changed stack (another key) does not."""
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.execute("INSERT INTO t VALUES ('first')")
    first = pg_snapshot("kept-1")
    first.take()
    first.close()  # the run ends; the stack is kept
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        conn.execute("UPDATE t SET v = 'second'")
    again = pg_snapshot("kept-1")
    assert again.take() is False  # reused
    restore(again, Owners(()))
    again.close()
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        assert one(conn, "SELECT v FROM t") == "first"
        conn.execute("UPDATE t SET v = 'third'")
    changed = pg_snapshot("kept-2")
    assert changed.take() is True
    changed.join()
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        conn.execute("UPDATE t SET v = 'fourth'")
    restore(changed, Owners(()), strategy="swap")
    changed.join()  # its next spare is made in the background
    with psycopg.connect(dsn(pg, "postgres"), autocommit=True) as admin:
        ours = [
            r[0]
            for r in admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'pyairtable%'"
            )
        ]
        assert len(ours) == 2, ours  # one snapshot and its spare: kept-1's were dropped
    with psycopg.connect(dsn(pg), autocommit=True) as conn:
        assert one(conn, "SELECT v FROM t") == "third"
    changed.discard()


def test_discard_drops_only_databases_it_can_prove_are_ours(
    pg: Handle, pg_snapshot: Callable[[str], PostgresSnapshot]
) -> None:
    with psycopg.connect(dsn(pg, "postgres"), autocommit=True) as admin:
        admin.execute("CREATE DATABASE pyairtable_snap_userdata")  # not our name pattern
        admin.execute('CREATE DATABASE "pyairtable_spare_0123456789abcdef"')  # no mark
    snapshot = pg_snapshot("key-d")
    snapshot.take()
    assert "pyairtable_snap_userdata" in [d.name for d in snapshot.databases]  # user data
    snapshot.discard()
    with psycopg.connect(dsn(pg, "postgres"), autocommit=True) as admin:
        left = {
            r[0]
            for r in admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'pyairtable%'"
            )
        }
    assert left == {"pyairtable_snap_userdata", "pyairtable_spare_0123456789abcdef"}


def test_redis_reset_keeps_clients_connected_and_restores_every_database(
    cache: Handle, closing: Callable[[Any], Any]
) -> None:
    app = redis.Redis.from_url(cache.url)
    other = redis.Redis.from_url(cache.url.rsplit("/", 1)[0] + "/4")
    app.set("session", "seed")
    app.set("ttl", "x", ex=600)
    app.rpush("queue", "a", "b")
    app.xadd("events", {"kind": "seed"})
    other.set("in-db-4", "seed")
    snapshot = closing(RedisSnapshot("cache", cache.url, "key-r"))
    snapshot.take()
    subscriber = redis.Redis.from_url(cache.url).pubsub()
    subscriber.subscribe("news")
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"
    client_id = app.client_id()

    app.set("session", "dirty")
    app.delete("queue")
    app.set("later", "1")
    redis.Redis.from_url(cache.url.rsplit("/", 1)[0] + "/9").set("in-db-9", "1")
    other.flushdb()
    snapshot.restore()

    assert app.client_id() == client_id  # the same connection: nothing was dropped
    assert app.get("session") == b"seed" and app.get("later") is None
    assert app.lrange("queue", 0, -1) == [b"a", b"b"]
    assert app.xlen("events") == 1
    assert 590 < app.ttl("ttl") <= 600
    assert other.get("in-db-4") == b"seed"
    assert redis.Redis.from_url(cache.url.rsplit("/", 1)[0] + "/9").dbsize() == 0
    app.publish("news", "still subscribed")
    message = subscriber.get_message(timeout=5)
    assert message is not None and message["data"] == b"still subscribed"
    subscriber.close()


def test_kept_redis_snapshots_round_trip_through_their_file_by_key(
    cache: Handle, stack: Orchestrator, tmp_path: Path, closing: Callable[[Any], Any]
) -> None:
    app = redis.Redis.from_url(cache.url)
    app.set("k", "kept")
    spec = stack.runs["cache"].spec
    store = snapshot_file(tmp_path / "docker-compose.yml.json")
    first = closing(Resets("stack:run-1"))
    first.take({"cache": spec}, ["cache"], store)
    assert store.stat().st_mode & 0o777 == 0o600
    app.set("k", "dirty")
    later = closing(Resets("stack:run-1"))  # a later run attached to the same kept stack
    later.take({"cache": spec}, ["cache"], store)
    assert later.notices == []  # found, not taken again
    later.restore(["cache"])
    assert app.get("k") == b"kept"
    app.set("k", "now")
    other = closing(Resets("stack:run-2"))  # another stack: the file is not its snapshot
    other.take({"cache": spec}, ["cache"], store)
    assert other.notices and "from its data as it is now" in other.notices[0]
    app.set("k", "dirty")
    other.restore(["cache"])
    assert app.get("k") == b"now"


def test_reset_names_are_checked_with_the_fix(stack: Orchestrator) -> None:
    specs = {name: stack.stack.services[name] for name in ("db", "api")}
    assert choose(None, specs, specs) == ["db"]
    assert choose(["db", "db"], specs, specs) == ["db"]
    with pytest.raises(
        UnknownServiceError, match="no service 'dbb' in the stack; services that can be reset: db"
    ):
        choose(["dbb"], specs, specs)
    with pytest.raises(
        ResetError, match="service 'api' cannot be reset: only PostgreSQL and Redis"
    ):
        choose(["api"], specs, specs)
    with pytest.raises(ResetError, match="no service of this run can be reset"):
        choose(None, {"api": specs["api"]}, specs)
