"""A database per xdist worker: what it costs and what it buys, on tests/projects/shop
(a FastAPI + SQLModel backend's 60 tests: a pooled engine, a session-scoped session,
module-scoped rows, teardowns that delete all rows, an alembic migration job).

    python benchmarks/workerdbs.py [--reps 10] [--only suite|copies]

The suite: serial, ``-n 2`` and ``-n 4``, with each worker's own databases (the default)
and with ``--pyairtable-shared-db``; wall time of the whole pytest command (median, min,
max over ``--reps`` runs in a row) and pass counts. Exits 1 unless every serial and
per-worker run passed all 60: the "passes ten times in a row" check.

The copies: one worker's database as the plugin makes it (``CREATE DATABASE <db>_gw0
TEMPLATE <snapshot>``, with the owner, grants and mark of pgcopies.py), on the shop's
migrated and seeded schema, against ``CREATE DATABASE ... TEMPLATE`` typed by hand with
each of PostgreSQL 15's strategies; and dropping one. A reset per test, in place and by
the swap, is benchmarks/reset.py's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
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
from psycopg.conninfo import make_conninfo

from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.state import pgcopies
from pytest_pyairtable.state.pgsnap import PostgresSnapshot

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "tests" / "projects" / "shop"
TESTS = 60
MODES = [
    ("serial", []),
    ("-n 2", ["-n", "2"]),
    ("-n 4", ["-n", "4"]),
    ("-n 2, shared database", ["-n", "2", "--pyairtable-shared-db"]),
    ("-n 4, shared database", ["-n", "4", "--pyairtable-shared-db"]),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def summarize(samples: list[float], unit: float = 1.0) -> str:
    median, low, high = (f * unit for f in (statistics.median(samples), min(samples), max(samples)))
    return f"{median:7.2f} (min {low:.2f}, max {high:.2f})"


def counts(output: str) -> dict[str, int]:
    last = output.strip().splitlines()[-1] if output.strip() else ""
    return {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|errors?)", last)}


def run_suite(args: list[str]) -> tuple[float, dict[str, int]]:
    with tempfile.TemporaryDirectory(prefix="shop-bench-") as tmp:
        project = Path(tmp) / "shop"
        shutil.copytree(SHOP, project)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SHOP_DB_PORT": str(free_port()),
            "SHOP_CACHE_PORT": str(free_port()),
            "SHOP_API_PORT": str(free_port()),
        }
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        started = time.perf_counter()
        done = subprocess.run(
            [*argv, "-p", "no:randomly", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=1200,
        )
        return time.perf_counter() - started, counts(done.stdout)


def suite(reps: int) -> bool:
    print(f"tests/projects/shop ({TESTS} tests), {reps} runs in a row of each, wall time in s:")
    ok = True
    serial = None
    for label, args in MODES:
        times, outcomes = [], []
        for _ in range(reps):
            seconds, outcome = run_suite(args)
            times.append(seconds)
            outcomes.append(outcome)
        passed = sum(1 for o in outcomes if o == {"passed": TESTS})
        failing = [o for o in outcomes if o != {"passed": TESTS}]
        worst = max(failing, key=lambda o: o.get("passed", 0) * -1) if failing else None
        serial = serial or statistics.median(times)
        speed = serial / statistics.median(times)
        line = (
            f"  {label:24} {summarize(times)}  x{speed:.2f} of serial; "
            f"all {TESTS} passed in {passed}/{reps}"
        )
        if worst is not None:
            line += f" (e.g. {worst})"
        print(line, flush=True)
        if "shared" not in label and passed != reps:
            ok = False
    return ok


def shop_schema(dsn: str) -> None:
    """The shop's tables as its migration makes them, and its seed rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            textwrap.dedent("""
            CREATE TABLE category (id serial PRIMARY KEY, name varchar NOT NULL UNIQUE);
            CREATE TABLE "user" (id serial PRIMARY KEY, email varchar NOT NULL,
                full_name varchar NOT NULL DEFAULT '', is_active boolean NOT NULL DEFAULT true,
                is_superuser boolean NOT NULL DEFAULT false);
            CREATE UNIQUE INDEX ix_user_email ON "user" (email);
            CREATE TABLE item (id serial PRIMARY KEY, title varchar NOT NULL,
                owner_id int NOT NULL REFERENCES "user", category_id int REFERENCES category);
            CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
            INSERT INTO alembic_version VALUES ('0001');
            INSERT INTO "user" (email, full_name, is_superuser)
                VALUES ('admin@example.com', 'Admin', true);
            INSERT INTO category (name) VALUES ('books'), ('games'), ('tools');
            """)
        )


def timed(step: Callable[[int], Any], reps: int, after: Callable[[int], Any]) -> list[float]:
    samples = []
    for n in range(reps):
        started = time.perf_counter()
        step(n)
        samples.append(time.perf_counter() - started)
        after(n)
    return samples


def copies(reps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docker-compose.yml"
        path.write_text(
            "services:\n  db:\n    image: postgres:15\n"
            "    environment: {POSTGRES_USER: shop, POSTGRES_PASSWORD: pw, POSTGRES_DB: shop}\n"
            f'    ports: ["{free_port()}:5432"]\n'
        )
        orch = Orchestrator(
            load_stack(path, environ={}), LocalBackend(run_id=f"bench-workerdbs-{os.getpid()}")
        )
        try:
            orch.start()
            dsn = orch.wait("db").url
            shop_schema(dsn)
            measure_copies(dsn, reps)
        finally:
            orch.stop()


def measure_copies(dsn: str, reps: int) -> None:
    snapshot = PostgresSnapshot("db", dsn, "bench")
    started = time.perf_counter()
    snapshot.take()
    snapshot_seconds = time.perf_counter() - started
    (db,) = snapshot.databases
    template = db.our("snap")
    admin = psycopg.connect(make_conninfo(dsn, dbname="postgres"), autocommit=True)
    run = f"bench-{os.getpid()}"

    def ours(n: int) -> None:
        pgcopies.make(snapshot, db, f"shop_gw{n}", pgcopies.mark(run, f"gw{n}", "shop"))

    def drop_ours(n: int) -> None:
        pgcopies.drop(snapshot, [f"shop_gw{n}"], run)

    def by_hand(strategy: str) -> Callable[[int], None]:
        def step(n: int) -> None:
            admin.execute(f"CREATE DATABASE hand_{n} TEMPLATE {template} STRATEGY {strategy}")

        return step

    def drop_hand(n: int) -> None:
        admin.execute(f"DROP DATABASE hand_{n}")

    made = timed(ours, reps, lambda n: None)
    dropped = timed(drop_ours, reps, lambda n: None)
    file_copy = timed(by_hand("FILE_COPY"), reps, drop_hand)
    wal_log = timed(by_hand("WAL_LOG"), reps, drop_hand)
    admin.close()
    snapshot.discard()
    print("One worker's database, the shop's migrated and seeded schema (3 tables, 4 rows):")
    print(f"  the snapshot it is copied from (once a run)   {snapshot_seconds * 1000:7.2f} ms")
    print(f"  ours: a worker's copy, made                   {summarize(made, 1000)} ms")
    print(f"  ours: a worker's copy, dropped                {summarize(dropped, 1000)} ms")
    print(f"  by hand: CREATE ... TEMPLATE, FILE_COPY       {summarize(file_copy, 1000)} ms")
    print(f"  by hand: CREATE ... TEMPLATE, WAL_LOG         {summarize(wal_log, 1000)} ms")
    print(
        f"  ours / by hand (FILE_COPY): "
        f"{statistics.median(made) / statistics.median(file_copy):.2f}x; target < 50 ms: "
        f"{'met' if statistics.median(made) < 0.05 else 'NOT met'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--only", choices=["suite", "copies"])
    args = parser.parse_args()
    ok = True
    if args.only != "suite":
        copies(max(args.reps, 5))
    if args.only != "copies":
        ok = suite(args.reps)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
