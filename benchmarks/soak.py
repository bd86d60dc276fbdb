"""Soak: many boot/teardown cycles of the local stack, counting what leaks.

    python benchmarks/soak.py [--cycles 100] [--max-seconds 900] [--delay 0.05]

Each cycle boots the seed-shaped stack (real PostgreSQL and Redis, eight stand-ins),
checks every service, and stops it. After every cycle it counts, against the state
before the first: processes carrying our run marker, listening ports of the stack,
temp dirs of runs, and this process's open file descriptors and threads. Every count
must stay 0; it prints them, and exits non-zero if any is not. Bounded by --cycles and
--max-seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from boot import compose_text

from pytest_pyairtable.backends.local import RUN_ID_VAR, LocalBackend
from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.model.spec import load_stack


def marked_processes() -> set[int]:
    """Processes started by this soak's runs (other test runs may share the machine)."""
    found = set()
    marker = RUN_ID_VAR.encode() + f"={os.getpid()}-soak".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def listening(ports: list[int]) -> list[int]:
    taken = []
    for port in ports:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                taken.append(port)
    return taken


def run_dirs() -> set[str]:
    dirs = set()
    for base in (Path(tempfile.gettempdir()), Path("/dev/shm")):
        dirs |= {str(p) for p in base.glob(f"pyairtable-*{os.getpid()}-soak*")}
    return dirs


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=900)
    parser.add_argument("--delay", type=float, default=0.05, help="each stand-in's time to ready")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        compose = Path(tmp) / "docker-compose.yml"
        compose.write_text(compose_text(args.delay))
        stack = load_stack(compose, environ={})
        ports = sorted({m.host for s in stack.services.values() for m in s.ports if m.host})
        fds0 = len(os.listdir("/proc/self/fd"))
        threads0 = threading.active_count()
        started = time.monotonic()
        done = 0
        leaks = {"processes": 0, "ports": 0, "temp dirs": 0, "fds": 0, "threads": 0}
        while done < args.cycles and time.monotonic() - started < args.max_seconds:
            orch = Orchestrator(stack, LocalBackend(run_id=f"{os.getpid()}-soak{done}"))
            try:
                orch.start()
                for name in stack.services:
                    orch.wait(name)
            finally:
                orch.stop()
            done += 1
            leaks["processes"] = len(marked_processes())
            leaks["ports"] = len(listening(ports))
            leaks["temp dirs"] = len(run_dirs())
            leaks["fds"] = max(0, len(os.listdir("/proc/self/fd")) - fds0)
            leaks["threads"] = max(0, threading.active_count() - threads0)
            if any(leaks.values()):
                break
            if done % 10 == 0:
                print(
                    f"{done} cycles, {time.monotonic() - started:.0f}s, no leaks so far", flush=True
                )
    took = time.monotonic() - started
    print(
        f"soak: {done} boot/teardown cycles of {len(stack.services)} services in {took:.0f}s "
        f"({took / max(done, 1):.2f}s a cycle)"
    )
    for what, count in leaks.items():
        print(f"  leaked {what:<10} {count}")
    return 1 if any(leaks.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
