"""Boot and teardown of a PyAirtable-shaped stack, and the plugin's cost on a run.

    python benchmarks/boot.py [--reps 5] [--delay 0.5] [--json benchmarks/results/boot.json]

Builds the seed's ten services with their dependency edges: real PostgreSQL and Redis,
and eight stand-ins each ready ``--delay`` seconds after they start. Measures, over
several repetitions (median and min-max):

- boot and teardown of the local backend (the whole stack, and the 3-service closure
  postgres + redis + platform-services that `pytest tests/test_auth.py` would start);
- our compose backend and `docker compose up -d --wait` / `down` on the same file with
  `interval: 1s` healthchecks, in turn, compared pair by pair, when a Docker engine
  answers (else reported as not measured);
- the plugin's overhead on a pytest run that needs no service.

No row is a ratio to our own timeline: that "critical path" adds up our own detection
too. The local backend's external reference (the same commands chained by hand) is
benchmarks/chain_local.py's; the compose backend's, `docker compose` itself, here and
in benchmarks/chain_compose.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.model.spec import load_stack

ROOT = Path(__file__).resolve().parent.parent


def seed_edges() -> dict[str, list[str]]:
    """The seed's services and edges, from the repo's docker-compose.yml: the one list."""
    from pytest_pyairtable.model.topology import read_topology

    return read_topology([ROOT / "docker-compose.yml"], env_file=ROOT / ".env.example")


SEED_EDGES = seed_edges()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def compose_text(delay: float) -> str:
    lines = ["services:"]
    pg, rd = free_port(), free_port()
    lines += [
        "  postgres:",
        "    image: postgres:16-alpine",
        "    environment: {POSTGRES_USER: bench, POSTGRES_PASSWORD: bench-pw, POSTGRES_DB: bench}",
        f'    ports: ["{pg}:5432"]',
        '    healthcheck: {test: ["CMD-SHELL", "pg_isready -U bench"], interval: 1s, retries: 60}',
        "  redis:",
        "    image: redis:7-alpine",
        f'    ports: ["{rd}:6379"]',
        '    healthcheck: {test: ["CMD", "redis-cli", "ping"], interval: 1s, retries: 60}',
    ]
    for name, deps in SEED_EDGES.items():
        if name in ("postgres", "redis"):
            continue
        port = free_port()
        lines += [
            f"  {name}:",
            "    image: python:3.11-slim",
            f'    ports: ["{port}:{port}"]',
            "    depends_on: {"
            + ", ".join(f"{d}: {{condition: service_healthy}}" for d in deps)
            + "}",
            f'    healthcheck: {{test: ["CMD-SHELL", "curl -f http://localhost:{port}/health"], '
            "interval: 1s, retries: 60}",
            "    x-pyairtable:",
            "      local:",
            f"        command: python -m pytest_pyairtable.standin --name {name} --port {port}"
            f" --startup-delay {delay}",
        ]
    return "\n".join(lines) + "\n"


def boot_once(compose: Path, only: list[str] | None, backend: str = "local") -> dict[str, float]:
    run_id = f"{os.getpid()}-{os.urandom(3).hex()}"
    if backend == "compose":
        from pytest_pyairtable.backends.compose import ComposeBackend

        chosen: Any = ComposeBackend(run_id=run_id, compose_file=compose)
    else:
        chosen = LocalBackend(run_id=run_id)
    orch = Orchestrator(load_stack(compose, environ={}), chosen)
    started = time.monotonic()
    try:
        names = orch.start(only)
        for name in names:
            orch.wait(name)
        boot = time.monotonic() - started
    finally:
        stop_started = time.monotonic()
        orch.stop()
        teardown = time.monotonic() - stop_started
    return {"boot": boot, "teardown": teardown}


def _row(label: str, s: dict[str, float]) -> str:
    return f"{label:<34}{s['median']:>8.3f}s{s['min']:>8.3f}s{s['max']:>8.3f}s"


def summarize(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def up_wait_once(compose: Path, command: str) -> dict[str, float]:
    """`docker compose up -d --wait` and `down` on the same file: the tool to beat."""
    project = f"pyairtable-{os.getpid()}-{os.urandom(3).hex()}"
    base = [*command.split(), "-f", str(compose), "-p", project]
    started = time.monotonic()
    try:
        subprocess.run([*base, "up", "-d", "--wait"], capture_output=True, check=True)
        boot = time.monotonic() - started
    finally:
        stop_started = time.monotonic()
        subprocess.run([*base, "down", "-t", "5"], capture_output=True, check=False)
    return {"boot": boot, "teardown": time.monotonic() - stop_started}


def docker_compose_available() -> str | None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        probe = subprocess.run([*cmd, "version"], capture_output=True, check=False)
        engine = subprocess.run(["docker", "info"], capture_output=True, check=False)
        if probe.returncode == 0 and engine.returncode == 0:
            return " ".join(cmd)
    return None


def overhead(reps: int, *, bytecode: bool) -> dict[str, Any]:
    """pytest on a test that needs no service, with the plugin and without it, runs
    interleaved, in CPU seconds; the overhead is the difference of the medians.
    ``bytecode``: with .pyc caches, as on a user's machine, or without them
    (PYTHONDONTWRITEBYTECODE=1, as some CI images set)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_plain.py").write_text("def test_plain():\n    pass\n")
        Path(tmp, "docker-compose.yml").write_text(compose_text(0.5))

        def run(*extra: str) -> float:
            """CPU seconds (user + system) the pytest process used: steadier than wall time
            on a shared machine, and what start-up overhead is made of."""
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            # not -q: the report header, which the plugin adds to, is part of a normal run
            subprocess.run(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *extra],
                cwd=tmp,
                capture_output=True,
                check=True,
                env=env,
            )
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

        run()  # warm the file cache and the compose topology cache
        with_plugin, without = [], []
        for _ in range(reps):
            with_plugin.append(run())
            without.append(run("-p", "no:pyairtable"))
    return {
        "with_plugin": summarize(with_plugin),
        "without": summarize(without),
        "overhead_s": statistics.median(with_plugin) - statistics.median(without),
    }


PLUGIN_COST = """
import os, sys, time
from pathlib import Path
import pytest  # pytest's own start-up is not ours
start = time.perf_counter()
from pytest_pyairtable import plugin, report
from pytest_pyairtable.session.runtime import runtime_for
from pytest_pyairtable.session.settings import resolve
here = Path.cwd()
runtime = runtime_for(resolve(lambda s: None, lambda s: None, os.environ), here, here)
report.header(runtime)
plugin._fixtures_module(plugin.Front(runtime))
print(time.perf_counter() - start)
"""


def plugin_cost(reps: int, *, bytecode: bool) -> dict[str, float]:
    """What the plugin itself adds to a run that needs no service, measured in-process:
    its imports, reading the compose topology, the header and registering fixtures."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "docker-compose.yml").write_text(compose_text(0.5))
        samples = [
            float(
                subprocess.run(
                    [sys.executable, "-c", PLUGIN_COST],
                    cwd=tmp,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(reps + 1)
        ][1:]  # the first run writes the caches
    return summarize(samples)


def measure_compose(tmp: Path, args: argparse.Namespace, compose_cmd: str) -> dict[str, Any]:
    """(b) our compose backend and (c) `docker compose up --wait` + `down` on the same
    containers, in turn (ours, theirs, ours, ...), so a drifting machine slows both
    alike; boot and teardown compared pair by pair."""
    import compose_stack

    compose_stack.build_image()
    containers = tmp / "containers.yml"
    ports = {name: free_port() for name in SEED_EDGES}
    containers.write_text(compose_stack.compose_text(SEED_EDGES, args.delay, ports))
    runs, waits = [], []
    for _ in range(args.reps):
        runs.append(boot_once(containers, None, "compose"))
        waits.append(up_wait_once(containers, compose_cmd))
    ours: dict[str, Any] = {key: summarize([r[key] for r in runs]) for key in runs[0]}
    theirs: dict[str, Any] = {key: summarize([w[key] for w in waits]) for key in waits[0]}
    pairs = list(zip(runs, waits, strict=True))
    return {
        "compose_backend": ours,
        "docker_compose_up_wait": theirs,
        "compose_speedup": summarize([w["boot"] / r["boot"] for r, w in pairs]),
        "teardown_vs_down": summarize([r["teardown"] / w["teardown"] for r, w in pairs]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.5, help="each stand-in's time to ready")
    parser.add_argument(
        "--json", type=Path, default=Path(__file__).parent / "results" / "boot.json"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        compose = Path(tmp) / "docker-compose.yml"
        compose.write_text(compose_text(args.delay))
        results: dict[str, Any] = {
            "delay": args.delay,
            "reps": args.reps,
        }
        for label, only in (("local_full", None), ("local_partial_3", ["platform-services"])):
            runs = [boot_once(compose, only) for _ in range(args.reps)]
            results[label] = {key: summarize([r[key] for r in runs]) for key in runs[0]}
        compose_cmd = docker_compose_available()
        if compose_cmd is None:
            results["compose_backend"] = "not measured: no Docker engine with compose answers"
            results["docker_compose_up_wait"] = results["compose_backend"]
        else:
            results.update(measure_compose(Path(tmp), args, compose_cmd))
    results["plugin_cost"] = plugin_cost(max(args.reps, 9), bytecode=True)
    results["plugin_cost_no_bytecode"] = plugin_cost(max(args.reps, 9), bytecode=False)
    results["overhead"] = overhead(max(args.reps, 9), bytecode=True)

    print(f"stack: seed-shaped, 10 services, stand-ins ready after {args.delay}s, {args.reps} reps")
    print(f"{'measure':<34}{'median':>9}{'min':>9}{'max':>9}")
    for label in ("local_full", "local_partial_3"):
        r = results[label]
        for key in ("boot", "teardown"):
            print(_row(f"{label} {key}", r[key]))
    print("  (the local backend against an external reference: benchmarks/chain_local.py)")
    for key, label in (("plugin_cost", ".pyc cached"), ("plugin_cost_no_bytecode", "no .pyc")):
        c = results[key]
        print(
            f"{'plugin cost, no service, ' + label:<34}{c['median'] * 1000:>7.1f}ms"
            f"{c['min'] * 1000:>7.1f}ms{c['max'] * 1000:>7.1f}ms"
        )
    o = results["overhead"]
    print(
        f"{'pytest CPU with/without plugin':<34}{o['with_plugin']['median']:>8.3f}s / "
        f"{o['without']['median']:.3f}s (difference {o['overhead_s'] * 1000:.0f} ms; "
        "run-to-run noise here is about +-30 ms)"
    )
    for label in ("compose_backend", "docker_compose_up_wait"):
        r = results[label]
        if isinstance(r, str):
            print(f"{label}: {r}")
            continue
        for key in ("boot", "teardown"):
            print(_row(f"{label} {key}", r[key]))
    if "compose_speedup" in results:
        for key, text in (
            ("compose_speedup", "docker compose up --wait boot / ours, per pair"),
            ("teardown_vs_down", "our teardown / docker compose down, per pair"),
        ):
            x = results[key]
            print(f"{text}: {x['median']:.3f} (min {x['min']:.3f}, max {x['max']:.3f})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
