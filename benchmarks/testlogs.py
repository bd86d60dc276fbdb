"""Per-test evidence: what capturing the services' logs costs a test.

    python benchmarks/testlogs.py [--reps 5] [--tests 300] [--compose] [--json FILE]

A stack of three services that log each request they get (local processes; with
``--compose`` the same as containers on the engine, image made with `docker import` as
in compose_stack.py). The suite: ``--tests`` tests, each using all three services and
making one request to each, so each has lines to capture. Per round, interleaved (each
pair in turn, its order swapped every other round), the same suite runs as separate
pytest processes, their logs in the benchmark's temp dir:

- ``never``: the feature off, the external reference;
- ``failed`` (the default): what every passing test pays (a mark per service);
- ``always``: the sections read for passing tests too (a read per service; for a
  container, a question to the engine first);
- the suite with every test failing, ``never`` and ``failed``: what the evidence adds to
  a failing test's report.

A test's time is its whole ``pytest_runtest_protocol`` (setup, call, teardown, their
hooks and reports), recorded by a conftest of the suite; the first test (the boot) is
left out. Per run the median over its tests; each mode's cost is its median minus the
``never`` run's median of the same round. Reported: medians over the rounds (min-max).
The marks alone are also timed in this process, without pytest.
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
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chains import env_with_project, write_json

from pytest_pyairtable.session.testlogs import TestLogs

SERVICES = ("db", "api", "worker")

SERVICE = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

name, port = sys.argv[1], int(sys.argv[2])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/health":
            print(f"{name}: got {self.path}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

TIMING = """
import json, os, time
import pytest
from pytest_pyairtable.frontends.pytest.roles import STASH

TIMES = []
ALTERNATE = os.environ.get("BENCH_ALTERNATE", "").split(",")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    mode = ALTERNATE[len(TIMES) % 2] if ALTERNATE != [""] else ""
    if mode:  # the setting, switched test by test: a reference in the same process
        item.config.stash[STASH].logs.mode = mode
    wall, cpu = time.perf_counter(), time.thread_time()
    try:
        return (yield)
    finally:
        TIMES.append((mode, time.perf_counter() - wall, time.thread_time() - cpu))


def pytest_sessionfinish(session):
    with open(os.environ["BENCH_TIMES"], "w") as out:
        json.dump(TIMES, out)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def compose_text(project: Path, ports: dict[str, int], containers: bool) -> str:
    from compose_stack import IMAGE

    lines = ["services:"]
    for name, port in ports.items():
        probe = f'probe: {{http: "http://127.0.0.1:{port}/health"}}'
        argv = f'"{project / "svc.py"}", {name}, "{port}"'
        lines.append(f"  {name}:")
        if containers:
            lines += [
                f"    image: {IMAGE}",
                "    network_mode: host",
                f'    volumes: ["/usr:/usr:ro", "{project}:{project}:ro"]',
                f"    command: [/usr/bin/python3, {argv}]",
                "    stop_grace_period: 1s",
                f"    x-pyairtable: {{{probe}}}",
            ]
        else:
            lines += [
                f"    image: example/{name}",
                f"    x-pyairtable: {{local: {{command: [python3, {argv}]}}, {probe}}}",
            ]
    return "\n".join(lines) + "\n"


def suite(ports: dict[str, int], tests: int, requests: bool, fail: bool) -> str:
    fixtures = ", ".join(f"pyairtable_{n}" for n in SERVICES)
    body = [f'    client.get("http://127.0.0.1:{port}/t{{i}}")' for port in ports.values()]
    body = (body if requests else ["    pass"]) + (["    assert False"] if fail else [])
    return (
        "import httpx\nimport pytest\n\nclient = httpx.Client()\n\n\n"
        f'@pytest.mark.parametrize("i", range({tests}))\n'
        f"def test_it({fixtures}, i):\n" + "\n".join(body) + "\n"
    )


def run(project: Path, env: dict[str, str], *args: str) -> list[tuple[str, float, float]]:
    """Each test's (mode, wall, CPU of the main thread) of a whole pytest run, its first
    test (the boot) left out."""
    times = project / "times.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", *args],
        cwd=project,
        env={**env, "BENCH_TIMES": str(times)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):
        raise RuntimeError(
            f"pytest {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}"
        )
    return [(str(m), float(w), float(c)) for m, w, c in json.loads(times.read_text())[1:]]


def medians(tests: list[tuple[str, float, float]]) -> tuple[float, float]:
    return statistics.median(t[1] for t in tests), statistics.median(t[2] for t in tests)


def paired(tests: list[tuple[str, float, float]], reference: str) -> tuple[float, float]:
    """Median over neighbouring tests of (the other mode's time - the reference's)."""
    walls, cpus = [], []
    for one, two in zip(tests[::2], tests[1::2], strict=False):
        other, ref = (two, one) if one[0] == reference else (one, two)
        walls.append(other[1] - ref[1])
        cpus.append(other[2] - ref[2])
    return statistics.median(walls), statistics.median(cpus)


def marks_alone(project: Path, reps: int = 20000) -> float:
    """Seconds for one test's marks of three services' logs, without pytest."""
    logs = TestLogs("failed", 50)
    for name in SERVICES:
        path = project / f"{name}.log"
        path.write_text("x\n" * 100)
        logs.seen(name, path)
    started = time.perf_counter()
    for _ in range(reps):
        logs.begin(SERVICES)
    return (time.perf_counter() - started) / reps


def shown(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"{statistics.median(ms):7.3f} ms (min {ms[0]:.3f}, max {ms[-1]:.3f})"


# name -> (tests make requests, tests fail, options, mode); each cost is against a reference
SUITES: dict[str, tuple[bool, bool, list[str], str]] = {
    "quiet, never": (False, False, ["--pyairtable-test-logs=never"], "never"),
    "quiet, failed": (False, False, [], "failed"),
    "requests, never": (True, False, ["--pyairtable-test-logs=never"], "never"),
    "requests, always": (True, False, ["--pyairtable-test-logs=always"], "always"),
    "failing, never": (True, True, ["--pyairtable-test-logs=never"], "never"),
    "failing, failed": (True, True, [], "failed"),
}
COSTS = {
    "a passing test, default (failed)": ("quiet, failed", "quiet, never"),
    "a passing test, always": ("requests, always", "requests, never"),
    "a failing test, default (failed)": ("failing, failed", "failing, never"),
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tests", type=int, default=300)
    parser.add_argument("--compose", action="store_true", help="containers, not processes")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.compose:
        from compose_stack import build_image

        build_image()
    env = env_with_project()
    backend = ["--pyairtable-backend", "compose" if args.compose else "local"]
    wall: dict[str, list[float]] = {name: [] for name in SUITES}
    cpu: dict[str, list[float]] = {name: [] for name in SUITES}
    mixed: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label in COSTS}
    with tempfile.TemporaryDirectory(prefix="bench-testlogs-") as tmp:
        project = Path(tmp)
        os.chmod(project, 0o755)  # the containers read the service's script
        ports = {name: free_port() for name in SERVICES}
        (project / "svc.py").write_text(SERVICE)
        (project / "conftest.py").write_text(TIMING)
        (project / "docker-compose.yml").write_text(compose_text(project, ports, args.compose))
        marks = marks_alone(project)
        for round_ in range(args.reps):
            for label, (mode, reference) in COSTS.items():
                requests, fail, extra, _ = SUITES[mode]
                (project / "test_suite.py").write_text(suite(ports, args.tests, requests, fail))
                # each pair in turn, its order swapped every other round
                for name in (reference, mode) if round_ % 2 else (mode, reference):
                    logs = project / "logs" / f"{round_}-{name}"
                    took = medians(
                        run(
                            project,
                            env,
                            *backend,
                            *SUITES[name][2],
                            f"--pyairtable-logs-dir={logs}",
                        )
                    )
                    wall[name].append(took[0])
                    cpu[name].append(took[1])
                # and in one process, the mode switched test by test
                order = [reference, mode] if round_ % 2 else [mode, reference]
                logs = project / "logs" / f"{round_}-{label}-mixed"
                alternate = ",".join(SUITES[name][3] for name in order)
                tests = run(
                    project,
                    {**env, "BENCH_ALTERNATE": alternate},
                    *backend,
                    *extra,
                    f"--pyairtable-logs-dir={logs}",
                )
                pair = paired(tests, SUITES[reference][3])
                mixed[label][0].append(pair[0])
                mixed[label][1].append(pair[1])
            print(f"round {round_ + 1}/{args.reps} done", file=sys.stderr)

    kind = "containers" if args.compose else "local processes"
    print(f"\n{args.tests} tests a run, {args.reps} rounds, 3 services ({kind})")
    print("one test (median of a run's tests), medians over the rounds (min-max):")
    for name in SUITES:
        print(f"  {name:18} wall {shown(wall[name])}   cpu {shown(cpu[name])}")
    print("cost: minus the same suite with the feature off (never), in the same round:")
    costs: dict[str, Any] = {}
    for label, (mode, reference) in COSTS.items():
        walls = [a - b for a, b in zip(wall[mode], wall[reference], strict=True)]
        cpus = [a - b for a, b in zip(cpu[mode], cpu[reference], strict=True)]
        costs[label] = {
            "wall": walls,
            "cpu": cpus,
            "mixed_wall": mixed[label][0],
            "mixed_cpu": mixed[label][1],
        }
        print(f"  {label:33} wall {shown(walls)}   cpu {shown(cpus)}")
    print("the same, in one process, the setting switched test by test (neighbours paired):")
    for label in COSTS:
        print(f"  {label:33} wall {shown(mixed[label][0])}   cpu {shown(mixed[label][1])}")
    print(f"the marks alone (3 services, no pytest): {marks * 1e6:.1f} us a test")
    write_json(
        args.json,
        {
            "tests": args.tests,
            "backend": kind,
            "wall": wall,
            "cpu": cpu,
            "costs": costs,
            "marks_alone": marks,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
