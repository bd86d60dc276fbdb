"""Jobs from a snapshot: a cold boot whose job inputs did not change, against the same
stack without its jobs, the jobs run, and the same restore done by hand.

    python benchmarks/jobsnap.py [--reps 7] [--json FILE] [--skip-compose]

The stack is tests/projects/catalog: PostgreSQL and Redis (the local backend's built-in
recipes, data on tmpfs), an alembic migration job of 50 revisions, a seed job (400
products, their prices and stock, two Redis keys), and the API (the plugin's stand-in)
after both. Per round, interleaved, so a busy machine slows each alike (boot: from the
start to the API ready; each stack stopped after, untimed):

- restored: the stack with its jobs, their snapshots in the store (a cold boot: fresh
  data dirs; the databases start from the seed job's snapshot, both jobs complete at once);
- without jobs: the same file with the jobs removed (the API waits for the databases):
  the boot the restored one is held to (within 1.2x);
- jobs run: the stack with its jobs, snapshots off (what every cold boot cost before);
- by hand: the restored boot's physical limit, done by hand from the same snapshot: its
  data dir copied into place (and chowned, as for the recipe's server), postgres and
  redis-server started with the recipe's command lines, each polled every 1 ms until it
  answers, then the stand-in, polled until /health answers; stopped in reverse order.

Then, once: how PostgreSQL's data comes back, data directory copy against template
database, on the migrated and seeded catalogue (the template cannot outlive a cold
boot: its cluster is new; the copy is what the fresh cluster's start costs already);
and, where a Docker engine answers, what the same data costs through the Engine API
(`docker cp` into a created container, out of a running one): the compose backend's way.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
import redis

from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.backends.recipes import DURABLE, find_binary
from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.engine.snapshots import NoSnapshots
from pytest_pyairtable.model.spec import StackSpec, load_stack
from pytest_pyairtable.state.jobsnap import JobSnapshots
from pytest_pyairtable.state.jobstore import Store

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "tests" / "projects" / "catalog"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spread(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def shown(s: dict[str, float], unit: str = "s", scale: float = 1.0) -> str:
    return (
        f"{s['median'] * scale:7.3f}{unit} (min {s['min'] * scale:.3f}, max {s['max'] * scale:.3f})"
    )


def without_jobs(compose: Path) -> Path:
    """The same stack with its jobs removed: the API waits for the databases instead."""
    text = compose.read_text()
    head, _, rest = text.partition("  migrate:")
    _, _, api = rest.partition("  api:")
    api = api.replace(
        "seed: {condition: service_completed_successfully}",
        "db: {condition: service_healthy}\n      cache: {condition: service_healthy}",
    )
    path = compose.with_name("nojobs.yml")
    path.write_text(head + "  api:" + api)
    return path


def boot(stack: StackSpec, snapshots: NoSnapshots | None, store: Store | None) -> float:
    """One cold boot of ``stack`` in-process: seconds from the start to all ready."""
    run_id = f"{os.getpid()}-{os.urandom(3).hex()}"
    backend = LocalBackend(run_id=run_id)
    made = JobSnapshots(stack, backend, run_id, store=store) if snapshots is None else snapshots
    orch = Orchestrator(stack, backend, snapshots=made)
    started = time.monotonic()
    try:
        for name in orch.start():
            orch.wait(name)
        return time.monotonic() - started
    finally:
        orch.stop()


def poll(check: Any, deadline: float = 60.0) -> None:
    give_up = time.monotonic() + deadline
    while True:
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        if time.monotonic() > give_up:
            raise RuntimeError("never answered")
        time.sleep(0.001)


def by_hand(stack: StackSpec, entry: Path, work: Path) -> float:
    """The restored boot done by hand, from the seed job's snapshot ``entry``."""
    db, cache, api = (stack.services[n] for n in ("db", "cache", "api"))
    db_port, cache_port = db.host_port(5432), cache.host_port(6379)
    api_port = api.host_port(8000)
    postgres = find_binary("postgres", "db", hint="")
    server = find_binary("redis-server", "cache", hint="")
    user = "postgres" if os.geteuid() == 0 else None
    work.mkdir()
    work.chmod(0o755)  # the server's user enters it, as the recipe's data dir
    procs: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    try:
        pg_dir, redis_dir = work / "db", work / "cache"
        pg_dir.mkdir(mode=0o700)
        redis_dir.mkdir(mode=0o700)
        shutil.copytree(entry / "db" / "data", pg_dir / "data", symlinks=True)
        if user:
            info = pwd.getpwnam(user)
            for folder, dirs, files in os.walk(pg_dir):
                for name in (".", *dirs, *files):
                    os.chown(os.path.join(folder, name), info.pw_uid, info.pw_gid)
        (pg_dir / "data").chmod(0o700)
        shutil.copyfile(entry / "cache" / "dump.rdb", redis_dir / "dump.rdb")
        pg_argv = [postgres, "-D", str(pg_dir / "data"), "-p", str(db_port),
                   "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={pg_dir}",
                   "-c", "dynamic_shared_memory_type=mmap"]  # fmt: skip
        for setting in DURABLE:
            pg_argv += ["-c", setting]
        log = (work / "postgres.log").open("wb")
        procs.append(subprocess.Popen(pg_argv, user=user, stderr=log))
        procs.append(
            subprocess.Popen(
                [server, "--port", str(cache_port), "--bind", "127.0.0.1", "--dir",
                 str(redis_dir), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip
        dsn = f"postgresql://catalog:catalog-secret@127.0.0.1:{db_port}/catalog"
        poll(lambda: psycopg.connect(dsn, connect_timeout=1).close() is None)
        poll(lambda: redis.Redis(port=cache_port, socket_timeout=1).ping())
        assert api.local.command is not None
        procs.append(subprocess.Popen(list(api.local.command), stdout=subprocess.DEVNULL))
        import urllib.request

        poll(lambda: urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=1))
        return time.monotonic() - started
    finally:
        stops = {0: signal.SIGINT}  # postgres: its fast shutdown; the others SIGTERM
        for n in reversed(range(len(procs))):
            proc = procs[n]
            proc.send_signal(stops.get(n, signal.SIGTERM))
            procs[n].wait(30)
        shutil.rmtree(work, ignore_errors=True)


def postgres_ways(stack: StackSpec, store: Store, reps: int) -> dict[str, Any]:
    """Data directory copy against template database, on the migrated catalogue."""
    run_id = f"{os.getpid()}-{os.urandom(3).hex()}"
    backend = LocalBackend(run_id=run_id)
    orch = Orchestrator(stack, backend, snapshots=JobSnapshots(stack, backend, run_id, store=store))
    results: dict[str, list[float]] = {}
    try:
        for name in orch.start(["seed"]):
            orch.wait(name)
        data = backend.server_data(stack.services["db"])
        assert data is not None
        running = orch.runs["db"].running
        assert running is not None
        dsn = "postgresql://catalog:catalog-secret@127.0.0.1:{}/postgres".format(
            stack.services["db"].host_port(5432)
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(reps):
                dest = Path(tempfile.mkdtemp(dir="/dev/shm"))
                t = time.monotonic()
                data.save(running, dest)
                results.setdefault("data dir: save (base backup to tmpfs)", []).append(
                    time.monotonic() - t
                )
                target = Path(tempfile.mkdtemp(dir="/dev/shm")) / "data"
                t = time.monotonic()
                shutil.copytree(dest / "data", target, symlinks=True)
                results.setdefault("data dir: put in place (copy)", []).append(time.monotonic() - t)
                shutil.rmtree(dest)
                shutil.rmtree(target.parent)
                fresh = _fresh_cluster()
                if fresh is not None:  # what every cold boot copies instead
                    target = Path(tempfile.mkdtemp(dir="/dev/shm")) / "data"
                    t = time.monotonic()
                    shutil.copytree(fresh, target, symlinks=True)
                    results.setdefault("fresh cluster: put in place (pgcache)", []).append(
                        time.monotonic() - t
                    )
                    shutil.rmtree(target.parent)
                t = time.monotonic()
                conn.execute("CREATE DATABASE bench_snap TEMPLATE catalog")
                results.setdefault("template: take (CREATE DATABASE TEMPLATE)", []).append(
                    time.monotonic() - t
                )
                for strategy in ("FILE_COPY", "WAL_LOG"):
                    conn.execute("CREATE DATABASE bench_copy TEMPLATE bench_snap")
                    t = time.monotonic()
                    conn.execute("DROP DATABASE bench_copy")
                    conn.execute(
                        f"CREATE DATABASE bench_copy TEMPLATE bench_snap STRATEGY {strategy}"
                    )
                    results.setdefault(f"template: restore (DROP + CREATE, {strategy})", []).append(
                        time.monotonic() - t
                    )
                    conn.execute("DROP DATABASE bench_copy")
                conn.execute("DROP DATABASE bench_snap")
    finally:
        orch.stop()
    return {k: spread(v) for k, v in results.items()}


def _fresh_cluster() -> Path | None:
    """The newest cached fresh cluster (backends/pgcache.py), if there is one."""
    from pytest_pyairtable.backends import pgcache

    root = pgcache.cache_root()
    found = sorted(
        (p for p in root.iterdir() if (p / "PG_VERSION").is_file()) if root else (),
        key=lambda p: p.stat().st_mtime,
    )
    return found[-1] if found else None


def compose_ways(entry: Path, reps: int) -> dict[str, Any] | None:
    """The snapshot's data dir through the Engine API: into a created container before
    its start (`docker cp`), and out of a running one: the compose backend's way."""
    if shutil.which("docker") is None:
        return None
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return None
    image = "pyairtable-test:base"
    inspect = ["docker", "image", "inspect", image]
    if subprocess.run(inspect, capture_output=True, check=False).returncode:
        return None
    results: dict[str, list[float]] = {}
    for _ in range(reps):
        name = f"pyairtable-bench-{os.getpid()}-{os.urandom(3).hex()}"
        subprocess.run(
            ["docker", "create", "--name", name, "-v", "/var/lib/postgresql/data",
             "-v", "/usr:/usr:ro", image, "/bin/sleep", "60"],
            capture_output=True, check=True,
        )  # fmt: skip
        try:
            t = time.monotonic()
            subprocess.run(
                ["docker", "cp", f"{entry / 'db' / 'data'}/.", f"{name}:/var/lib/postgresql/data"],
                capture_output=True, check=True,
            )  # fmt: skip
            results.setdefault("into a created container (docker cp)", []).append(
                time.monotonic() - t
            )
            subprocess.run(["docker", "start", name], capture_output=True, check=True)
            out = Path(tempfile.mkdtemp(dir="/dev/shm"))
            t = time.monotonic()
            subprocess.run(
                ["docker", "cp", f"{name}:/var/lib/postgresql/data", str(out / "data")],
                capture_output=True, check=True,
            )  # fmt: skip
            results.setdefault("out of a running container (docker cp)", []).append(
                time.monotonic() - t
            )
            shutil.rmtree(out)
        finally:
            subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)
    return {k: spread(v) for k, v in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-compose", action="store_true")
    args = parser.parse_args()
    if args.reps < 5:
        parser.error("--reps: at least 5 rounds")
    with tempfile.TemporaryDirectory(prefix="jobsnap-bench-") as tmp:
        project = Path(tmp) / "catalog"
        shutil.copytree(CATALOG, project)
        ports = {"CATALOG_DB_PORT": free_port(), "CATALOG_CACHE_PORT": free_port()}
        ports["CATALOG_API_PORT"] = free_port()
        environ = {**os.environ, **{k: str(v) for k, v in ports.items()}}
        compose = project / "docker-compose.yml"
        jobs = load_stack(compose, environ=environ)
        bare = load_stack(without_jobs(compose), environ=environ)
        store = Store(compose, Path(tmp) / "snapshots")
        first = boot(jobs, None, store)  # runs the jobs, saves their snapshots
        entry = next(e for e in store.entries() if store.meta(e)["job"] == "seed")
        rows: dict[str, list[float]] = {"restored": [], "without jobs": [], "jobs run": []}
        rows["by hand"] = []
        ratios, limits = [], []
        tmpfs = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tmp  # as the recipe's data
        for _ in range(args.reps):
            rows["restored"].append(boot(jobs, None, store))
            rows["without jobs"].append(boot(bare, NoSnapshots(), None))
            rows["jobs run"].append(boot(jobs, NoSnapshots(), None))
            hand = Path(tempfile.mkdtemp(prefix="jobsnap-hand-", dir=tmpfs)) / "run"
            hand.parent.chmod(0o755)
            rows["by hand"].append(by_hand(jobs, entry, hand))
            hand.parent.rmdir()
            ratios.append(rows["restored"][-1] / rows["without jobs"][-1])
            limits.append(rows["restored"][-1] / rows["by hand"][-1])
        ways = postgres_ways(jobs, store, args.reps)
        docker = None if args.skip_compose else compose_ways(entry, args.reps)
        size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
    result: dict[str, Any] = {
        "reps": args.reps,
        "first_boot_saving_snapshots_s": first,
        "boots": {k: spread(v) for k, v in rows.items()},
        "restored_over_without_jobs": spread(ratios),
        "restored_over_by_hand": spread(limits),
        "snapshot_mb": size / 1e6,
        "postgres": ways,
        "compose": docker,
    }
    print(f"catalogue stack, {args.reps} rounds, boot to the API ready (median, min, max):")
    print(f"  first boot (jobs run, snapshots saved): {first:.3f}s")
    for label, samples in result["boots"].items():
        print(f"  {label:<14} {shown(samples)}")
    ratio, limit = result["restored_over_without_jobs"], result["restored_over_by_hand"]
    print(f"  restored / without jobs, per round: {shown(ratio, 'x')}")
    print(f"  restored / by hand, per round:      {shown(limit, 'x')}")
    print(f"  the seed job's snapshot: {size / 1e6:.1f} MB (PostgreSQL data dir + Redis RDB)")
    print("PostgreSQL's data back, on the migrated catalogue (ms):")
    for label, samples in ways.items():
        print(f"  {label:<44} {shown(samples, ' ms', 1000)}")
    if docker is None:
        print("compose backend: not measured (no Docker engine, or --skip-compose)")
    else:
        print("the same data dir through the Engine API (ms):")
        for label, samples in docker.items():
            print(f"  {label:<44} {shown(samples, ' ms', 1000)}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["restored_over_without_jobs"]["median"] <= 1.2 else 1


if __name__ == "__main__":
    sys.exit(main())
