"""State reset: what `pyairtable_reset` costs a test, against doing it by hand.

    python benchmarks/reset.py [--reps 15]

Starts a real PostgreSQL and Redis with the local backend. A small database (two
tables, 1000 rows each, a sequence, an index) and an app session connected to it
throughout; Redis datasets of 100, 1000 and 10000 keys (strings, hashes, TTLs).
Reports the median of ``--reps`` restores, with min and max:

PostgreSQL
- ours, in place (the default whenever the schema is unchanged): the changed table's
  rows and every sequence put back while the app stays connected;
- ours, in place, one table of a thousand changed by a single row, and nothing changed;
- ours: the swap (spare ready, as when a test outlasts its making), connect included;
- ours, back to back: the next swap at once, waiting for its spare to be made;
- by hand, the textbook way: DROP DATABASE ... WITH (FORCE); CREATE DATABASE ... TEMPLATE
  (PostgreSQL polls for the ended session to go every 100 ms: most of its time);
- by hand, our way's physical limit: the same ALTER/terminate/RENAME statements typed
  into one open session, with a spare already made.

Redis
- ours: one pre-encoded MULTI (FLUSHDB, RESTORE of every key) in one write;
- by hand with redis-py: the same commands through a transactional pipeline;
- DEBUG RELOAD NOSAVE (the server's own reload of an RDB file): fastest, but disabled
  by default since Redis 7 and it reloads whatever RDB file the server wrote last.

In a pytest run
- the setup of a test marked ``pyairtable_reset("db", "cache")`` (its lease, the reset,
  its fixtures) against the same test unmarked: what a reset costs a test, whole.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import redis
from psycopg.conninfo import make_conninfo

from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.backends.recipes import find_binary
from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.state.pgrestore import restore
from pytest_pyairtable.state.pgsessions import Owners
from pytest_pyairtable.state.pgsnap import PostgresSnapshot
from pytest_pyairtable.state.redissnap import RedisSnapshot


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summarize(samples: list[float]) -> str:
    return (
        f"{statistics.median(samples) * 1000:8.2f} ms "
        f"(min {min(samples) * 1000:.2f}, max {max(samples) * 1000:.2f})"
    )


def timed(
    step: Callable[[], Any], reps: int, before: Callable[[], Any] = lambda: None
) -> list[float]:
    samples = []
    for _ in range(reps):
        before()
        started = time.perf_counter()
        step()
        samples.append(time.perf_counter() - started)
    return samples


def small_database(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE users (id serial PRIMARY KEY, name text, at timestamptz DEFAULT now())"
        )
        conn.execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users, "
            "total numeric)"
        )
        conn.execute("CREATE INDEX ON orders (user_id)")
        conn.execute("INSERT INTO users (name) SELECT 'u' || g FROM generate_series(1, 1000) g")
        conn.execute(
            "INSERT INTO orders (user_id, total) SELECT g, g * 1.5 FROM generate_series(1, 1000) g"
        )


def postgres(dsn: str, reps: int) -> None:
    small_database(dsn)
    admin = psycopg.connect(make_conninfo(dsn, dbname="postgres"), autocommit=True)
    app: list[Any] = [psycopg.connect(dsn, autocommit=True)]

    def dirty_with_app_connected() -> None:
        try:
            app[0].execute("INSERT INTO users (name) VALUES ('dirty')")
        except psycopg.Error:  # ended by the last reset: the app's pool reconnects
            app[0] = psycopg.connect(dsn, autocommit=True)
            app[0].execute("INSERT INTO users (name) VALUES ('dirty')")

    ours = PostgresSnapshot("db", dsn, "bench")
    ours.take()
    nobody = Owners(())  # the app's session is not the benchmark's own: a swap may end it

    def swap_once() -> None:
        restore(ours, nobody, strategy="swap")

    def in_place() -> None:
        assert restore(ours, nobody, strategy="in place")["app"].startswith("in place")

    def dirty_and_spare_ready() -> None:
        ours.join()
        dirty_with_app_connected()

    def dirty_every_row() -> None:
        dirty_with_app_connected()
        app[0].execute("UPDATE orders SET total = total + 1")

    in_place()  # reads the snapshot's rows once, into memory
    one_row = timed(in_place, reps, dirty_with_app_connected)
    all_rows = timed(in_place, reps, dirty_every_row)
    nothing = timed(in_place, reps)
    swap_once()  # its first spare is made now; later ones in the background
    swap = timed(swap_once, reps, dirty_and_spare_ready)
    back_to_back = timed(swap_once, reps, dirty_with_app_connected)
    ours.discard()

    admin.execute("CREATE DATABASE snap TEMPLATE app")  # the app is between sessions here
    admin.execute("ALTER DATABASE snap ALLOW_CONNECTIONS false")

    def drop_create() -> None:
        admin.execute("DROP DATABASE app WITH (FORCE)")
        admin.execute("CREATE DATABASE app TEMPLATE snap")

    textbook = timed(drop_create, reps, dirty_with_app_connected)

    def make_spare() -> None:
        admin.execute("DROP DATABASE IF EXISTS old")
        admin.execute("CREATE DATABASE spare TEMPLATE snap ALLOW_CONNECTIONS false")
        dirty_with_app_connected()

    def swap_by_hand() -> None:
        admin.execute("ALTER DATABASE app ALLOW_CONNECTIONS false")
        while admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = 'app' AND pid <> pg_backend_pid()"
        ).fetchone()[0]:
            time.sleep(0.001)
        with admin.transaction():
            admin.execute("ALTER DATABASE app RENAME TO old")
            admin.execute("ALTER DATABASE spare RENAME TO app")
            admin.execute("ALTER DATABASE app ALLOW_CONNECTIONS true")

    limit = timed(swap_by_hand, reps, make_spare)
    print("PostgreSQL, a small database (2 tables x 1000 rows), an app session connected:")
    print(f"  ours: in place, 1 table changed (1 row)      {summarize(one_row)}")
    print(f"  ours: in place, both tables changed          {summarize(all_rows)}")
    print(f"  ours: in place, nothing changed              {summarize(nothing)}")
    print(f"  ours: swap in the spare                      {summarize(swap)}")
    print(f"  ours: back to back (waits for its spare)     {summarize(back_to_back)}")
    print(f"  by hand: DROP ... WITH (FORCE) + TEMPLATE     {summarize(textbook)}")
    print(f"  by hand: the same swap in an open session     {summarize(limit)}")
    print(
        f"  ours / textbook: {statistics.median(swap) / statistics.median(textbook):.2f}x;"
        f" ours / the swap's limit: {statistics.median(swap) / statistics.median(limit):.2f}x"
        " (ours checks its kept session first)"
    )
    app[0].close()
    admin.close()


def fill(client: Any, keys: int) -> None:
    client.flushall()
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        if i % 10 == 0:
            pipe.hset(f"h{i}", mapping={"a": i, "b": "x" * 20})
        else:
            pipe.set(f"k{i}", "v" * 50, ex=3600 if i % 3 == 0 else None)
    pipe.execute()


def redis_by_hand(client: Any, snapshot: RedisSnapshot) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.execute_command("FLUSHDB")
    for key, ttl, payload in snapshot.entries.get(0, []):
        pipe.restore(key, ttl, payload)
    pipe.execute()


def redis_datasets(reps: int) -> None:
    server = find_binary("redis-server", "bench", hint="apt-get install redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        process = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", tmp, "--enable-debug-command", "yes"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.01)
            print("Redis (strings, hashes, TTLs on a third), clients stay connected:")
            for keys in (100, 1000, 10000):
                fill(client, keys)
                snapshot = RedisSnapshot("cache", f"redis://127.0.0.1:{port}/0", "bench")
                snapshot.take()
                client.save()  # what DEBUG RELOAD NOSAVE reads back

                def dirty() -> None:
                    client.set("dirty", 1)

                ours = timed(snapshot.restore, reps, dirty)
                hand = timed(lambda s=snapshot: redis_by_hand(client, s), reps, dirty)
                reload = timed(
                    lambda: client.execute_command("DEBUG", "RELOAD", "NOSAVE"), reps, dirty
                )
                assert client.get("dirty") is None
                print(f"  {keys:>5} keys: ours                   {summarize(ours)}")
                print(f"  {keys:>5} keys: redis-py pipeline      {summarize(hand)}")
                print(f"  {keys:>5} keys: DEBUG RELOAD NOSAVE    {summarize(reload)}")
        finally:
            process.terminate()
            process.wait(10)


IN_PYTEST = """
import json, time
import psycopg, pytest, redis

@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        with open("setups.jsonl", "a") as f:
            f.write(json.dumps([item.name, time.perf_counter() - started]) + "\\n")
"""

IN_PYTEST_TESTS = """
import psycopg, pytest, redis

def write(db, cache):
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (n int)")
        conn.execute("INSERT INTO t VALUES (1)")
    redis.Redis.from_url(cache.url).set("k", 1)

@pytest.mark.parametrize("i", range({reps}))
def test_plain(pyairtable_db, pyairtable_cache, i):
    write(pyairtable_db, pyairtable_cache)

@pytest.mark.parametrize("i", range({reps}))
@pytest.mark.pyairtable_reset("db", "cache")
def test_reset(pyairtable_db, pyairtable_cache, i):
    write(pyairtable_db, pyairtable_cache)
"""


def compose_text(*, with_cache: bool) -> str:
    text = f"""
        services:
          db:
            image: postgres:16
            environment: {{POSTGRES_USER: bench, POSTGRES_PASSWORD: pw-bench, POSTGRES_DB: app}}
            ports: ["{free_port()}:5432"]
    """
    if with_cache:
        text += f"""
          cache:
            image: redis:7
            ports: ["{free_port()}:6379"]
        """
    return textwrap.dedent(text)


def in_pytest(reps: int) -> None:
    """The whole cost to a test: the setup of a test marked pyairtable_reset (lease,
    reset, fixtures) against the same test unmarked, in one pytest run."""
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "docker-compose.yml").write_text(compose_text(with_cache=True))
        (project / "conftest.py").write_text(IN_PYTEST)
        (project / "test_reset.py").write_text(IN_PYTEST_TESTS.format(reps=reps + 1))
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        setups: dict[str, list[float]] = {"plain": [], "reset": []}
        for line in (project / "setups.jsonl").read_text().splitlines():
            name, seconds = json.loads(line)
            setups[name.split("[")[0].removeprefix("test_")].append(seconds)
    plain, reset = setups["plain"][1:], setups["reset"][1:]  # the first of each: the boot
    print("In a pytest run: a test's setup (PostgreSQL and Redis fixtures), the first excluded:")
    print(f"  marked pyairtable_reset('db', 'cache')       {summarize(reset)}")
    print(f"  the same test, unmarked                       {summarize(plain)}")
    print(
        "  what the reset adds to a test               "
        f"{(statistics.median(reset) - statistics.median(plain)) * 1000:8.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docker-compose.yml"
        path.write_text(compose_text(with_cache=False))
        orch = Orchestrator(
            load_stack(path, environ={}), LocalBackend(run_id=f"bench-reset-{os.getpid()}")
        )
        try:
            orch.start()
            postgres(orch.wait("db").url, args.reps)
        finally:
            orch.stop()
    redis_datasets(args.reps)
    in_pytest(args.reps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
