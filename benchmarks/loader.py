"""How long reading a compose project takes: our loader against `docker compose config`.

    python benchmarks/loader.py [--reps 15] [--json benchmarks/results/loader.json]

Two projects: the repo's 10-service docker-compose.yml (with .env.example), and a
generated 60-service file built the way large real files are (anchors and merge keys,
interpolation with defaults, healthchecks, depends_on chains, ports, profiles). For
each, over several runs (median, min-max):

- ``load_stack``: the full load the plugin does when a test needs the stack, timed in a
  fresh process (imports excluded, as the plugin pays them once either way; nothing
  cached from an earlier load);
- ``docker compose config --format json``, the reference implementation, on the same
  files in the same run (wall time of the process: what a tool shelling out would pay).

Targets: under 5 ms for 10 services and 60 ms for 60 services. The imports the full
load needs (PyYAML's C parser and our model modules) are printed apart: a process pays
them once, and a pytest run that needs no service never does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TIMED = """
import sys, time
from pathlib import Path
from pytest_pyairtable.model import loader, service, yamlread  # noqa: F401 - imports first
from pytest_pyairtable.model.spec import load_stack
start = time.perf_counter()
stack = load_stack([Path(sys.argv[1])], env_file=Path(sys.argv[2]), environ={"PWD": sys.argv[3]})
print(time.perf_counter() - start, len(stack.services))
"""


def sixty_services() -> str:
    lines = [
        "x-healthcheck: &healthcheck",
        "  interval: ${HC_INTERVAL:-10s}",
        "  timeout: 5s",
        "  retries: 5",
        "  start_period: 30s",
        "x-env: &env",
        "  LOG_LEVEL: ${LOG_LEVEL:-info}",
        "  DATABASE_URL: postgresql://${PG_USER:-app}:${PG_PASSWORD}@postgres:5432/app",
        "  REDIS_URL: redis://:${REDIS_PASSWORD}@redis:6379/0",
        "x-service: &service",
        "  image: ghcr.io/example/service:${TAG:-latest}",
        "  restart: unless-stopped",
        "  environment:",
        "    <<: *env",
        "services:",
        "  postgres:",
        "    image: postgres:16-alpine",
        "    environment: {POSTGRES_PASSWORD: '${PG_PASSWORD:?set it}'}",
        "    ports: ['${PG_PORT:-5432}:5432']",
        "    healthcheck: {<<: *healthcheck, test: ['CMD-SHELL', 'pg_isready']}",
        "  redis:",
        "    image: redis:7-alpine",
        "    command: redis-server --requirepass ${REDIS_PASSWORD}",
        "    healthcheck: {<<: *healthcheck, test: ['CMD', 'redis-cli', 'ping']}",
    ]
    for i in range(58):
        deps = ["postgres", "redis"] if i < 4 else [f"svc{i - 4}", f"svc{i - 3}"]
        lines += [
            f"  svc{i}:",
            "    <<: *service",
            f"    command: python -m svc{i} --port {9000 + i} --workers ${{WORKERS:-2}}",
            f"    ports: ['{9000 + i}:{9000 + i}']",
            "    healthcheck:",
            "      <<: *healthcheck",
            f"      test: ['CMD-SHELL', 'curl -f http://localhost:{9000 + i}/health || exit 1']",
            "    depends_on:",
            *[f"      {d}: {{condition: service_healthy}}" for d in deps],
        ]
        if i % 10 == 9:
            lines.append("    profiles: ['']")
    return "\n".join(lines) + "\n"


IMPORTS = """
import time
import pytest  # noqa: F401 - pytest's own imports (re, pathlib, dataclasses ...) are not ours
import pytest_pyairtable.session.runtime  # noqa: F401 - what the plugin imports on every run
start = time.perf_counter()
from pytest_pyairtable.model import loader, service, yamlread  # noqa: F401
print(time.perf_counter() - start)
"""


def imports(reps: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", IMPORTS]
    return summarize(
        [float(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)
         for _ in range(reps)]
    )  # fmt: skip


def summarize(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def ours(compose: Path, env_file: Path, reps: int) -> tuple[dict[str, float], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    samples, count = [], 0
    for _ in range(reps):
        out = subprocess.run(
            [sys.executable, "-c", TIMED, str(compose), str(env_file), str(compose.parent)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        samples.append(float(out[0]))
        count = int(out[1])
    return summarize(samples), count


def reference_command() -> list[str] | None:
    sys.path.insert(0, str(ROOT / "tests"))
    from compose_reference import find_reference

    return find_reference()


def reference(command: list[str], compose: Path, env_file: Path, reps: int) -> dict[str, float]:
    samples = []
    args = [*command, "-f", str(compose), "--env-file", str(env_file), "config", "--format", "json"]
    for _ in range(reps):
        start = time.perf_counter()
        subprocess.run(args, cwd=compose.parent, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return summarize(samples)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks" / "results" / "loader.json"
    )
    args = parser.parse_args()
    command = reference_command()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp, "ten")
        small.mkdir()
        shutil.copy(ROOT / "docker-compose.yml", small / "docker-compose.yml")
        shutil.copy(ROOT / ".env.example", small / ".env")
        large = Path(tmp, "sixty")
        large.mkdir()
        (large / "docker-compose.yml").write_text(sixty_services())
        (large / ".env").write_text("PG_PASSWORD=pw\nREDIS_PASSWORD=pw\n")
        for name, directory, target in (
            ("10 services", small, 0.005),
            ("60 services", large, 0.060),
        ):
            compose, env_file = directory / "docker-compose.yml", directory / ".env"
            timing, count = ours(compose, env_file, args.reps)
            entry: dict[str, Any] = {"services": count, "load_stack": timing, "target": target}
            if command:
                entry["docker_compose_config"] = reference(command, compose, env_file, args.reps)
            results[name] = entry
    print(
        f"{'project':<13}{'load_stack median (min-max)':>32}{'compose config median (min-max)':>36}"
    )
    for name, entry in results.items():
        t = entry["load_stack"]
        ours_text = f"{t['median'] * 1e3:.2f} ms ({t['min'] * 1e3:.2f}-{t['max'] * 1e3:.2f})"
        ref = entry.get("docker_compose_config")
        ref_text = "not measured (no Compose v2)"
        if ref:
            ratio = ref["median"] / t["median"]
            spread = f"({ref['min'] * 1e3:.1f}-{ref['max'] * 1e3:.1f})"
            ref_text = f"{ref['median'] * 1e3:.1f} ms {spread} x{ratio:.0f}"
        verdict = "ok" if t["median"] < entry["target"] else "OVER TARGET"
        goal = f"target {entry['target'] * 1e3:.0f} ms: {verdict}"
        print(f"{name:<13}{ours_text:>32}{ref_text:>36}  {goal}")
    results["imports"] = imports(args.reps)
    i = results["imports"]
    print(
        f"{'imports, once per process':<27}{i['median'] * 1e3:.2f} ms "
        f"({i['min'] * 1e3:.2f}-{i['max'] * 1e3:.2f})"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
