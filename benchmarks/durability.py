"""What durability costs the built-in PostgreSQL: boot time and commits.

    python benchmarks/durability.py [--reps 7] [--inserts 2000]

The recipe runs with synchronous_commit=on and full_page_writes=on (every acknowledged
commit survives a kill of the server) and fsync=off (its data dir is temporary, on
tmpfs by default: a machine crash loses it whatever fsync does). Measured in the same
run, interleaved, over several repetitions (median and min-max), through the plugin's
own local backend:

- durable: the recipe as it is;
- fast: what the recipe used to run with and a service may still ask for in its own
  command (``postgres -c synchronous_commit=off -c full_page_writes=off``): the reference;
- fsync: the recipe plus ``-c fsync=on``, what a machine crash would need (on a disk).

For each: the time from launch to the first accepted connection (boot: initdb comes
from the cluster cache, so this is the server's own start), and N autocommitted
single-row INSERTs over one connection.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.model.spec import load_stack

VARIANTS = {
    "durable": "",
    "fast (reference)": "command: postgres -c synchronous_commit=off -c full_page_writes=off",
    "fsync": "command: postgres -c fsync=on",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def once(folder: Path, command: str, inserts: int) -> tuple[float, float]:
    compose = folder / "docker-compose.yml"
    compose.write_text(
        "services:\n  db:\n    image: postgres:16\n"
        f"    {command}\n"
        "    environment: {POSTGRES_USER: app, POSTGRES_PASSWORD: pw, POSTGRES_DB: app}\n"
        f"    ports: ['{free_port()}:5432']\n"
    )
    stack = load_stack(compose, environ=dict(os.environ))
    from pytest_pyairtable.backends.local import LocalBackend

    orch = Orchestrator(stack, LocalBackend(run_id=f"bench-{os.getpid()}-{time.time_ns()}"))
    try:
        started = time.perf_counter()
        handle = orch.wait("db")
        boot = time.perf_counter() - started
        with psycopg.connect(handle.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (n int)")
            started = time.perf_counter()
            for n in range(inserts):
                conn.execute("INSERT INTO t VALUES (%s)", (n,))
            writes = time.perf_counter() - started
    finally:
        orch.stop()
    return boot, writes


def summarize(samples: list[float], scale: float = 1000.0, unit: str = "ms") -> str:
    return (
        f"{statistics.median(samples) * scale:8.1f} {unit} "
        f"(min {min(samples) * scale:.1f}, max {max(samples) * scale:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--inserts", type=int, default=2000)
    args = parser.parse_args()
    boots: dict[str, list[float]] = {name: [] for name in VARIANTS}
    writes: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        once(Path(tmp), "", 10)  # warm the cluster cache: initdb is not what is measured
        for _ in range(args.reps):
            for name, command in VARIANTS.items():  # interleaved: drift hits all alike
                boot, write = once(Path(tmp), command, args.inserts)
                boots[name].append(boot)
                writes[name].append(write)
    print(f"PostgreSQL boot (launch to ready), {args.reps} reps:")
    for name, samples in boots.items():
        print(f"  {name:<18} {summarize(samples)}")
    print(f"{args.inserts} autocommitted INSERTs, one connection:")
    reference = statistics.median(writes["fast (reference)"])
    for name, samples in writes.items():
        ratio = statistics.median(samples) / reference
        print(f"  {name:<18} {summarize(samples)}  x{ratio:.2f} of the reference")


if __name__ == "__main__":
    main()
