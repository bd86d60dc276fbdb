"""What measuring the host-run services' coverage costs a stack's boot and teardown.

    python benchmarks/service_coverage.py [--reps 9] [--services 3] [--json FILE]

A chain of ``--services`` small Python HTTP services of a generated package (each
depending, service_healthy, on the one before, each ready as soon as it listens), run by
the local backend in this process. Per round, interleaved, so a busy machine slows all
alike:

- stack, not measured: boot (until the last is ready) and teardown (SIGTERM, each gone);
- stack, measured: the same with the run's coverage handed to the services, as under
  ``pytest --cov`` (coverage starts in each at start-up, saves its data on SIGTERM);
- by hand, not measured / measured: the same commands started one by one from this
  process, each the moment the one before answers ``GET /health`` (polled every 1 ms),
  with the environment the local backend gives a service, then stopped in reverse
  order (SIGTERM, wait for exit); measured with coverage's own mechanism only
  (``COVERAGE_PROCESS_CONFIG``, read by coverage's .pth file): what coverage itself costs.

Rows: each median with min-max; the cost of measuring (measured minus not, per round),
ours and by hand; and ours beyond coverage's own (the difference of the two, per round).
Each measured round checks that every service wrote its data file.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import coverage
from chains import free_port, poll_until_answers, shown, spread, write_json

from pytest_pyairtable.backends.environment import base_environment
from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.backends.measure import CONFIG_VAR, ServiceCoverage
from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.model.spec import load_stack

SERVER = """
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


def health():
    return b"ok"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = health()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def write_project(root: Path, ports: list[int]) -> Path:
    package = root / "benchsvc"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "server.py").write_text(SERVER)
    lines = ["services:"]
    for i, port in enumerate(ports):
        lines += [f"  s{i}:", "    image: example/svc"]
        if i:
            lines.append(f"    depends_on: {{s{i - 1}: {{condition: service_healthy}}}}")
        lines += [
            "    x-pyairtable:",
            f"      local: {{command: [{sys.executable}, -m, benchsvc.server],",
            f'               env: {{PORT: "{port}"}}}}',
            f'      probe: {{http: "http://127.0.0.1:{port}/health"}}',
        ]
    compose = root / "docker-compose.yml"
    compose.write_text("\n".join(lines) + "\n")
    return compose


def stack_once(compose: Path, measured: ServiceCoverage | None) -> dict[str, float]:
    backend = LocalBackend(run_id=f"{os.getpid()}-{os.urandom(3).hex()}", coverage=measured)
    orch = Orchestrator(load_stack(compose, environ={}), backend)
    started = time.perf_counter()
    try:
        for name in orch.start(None):
            orch.wait(name)
        boot = time.perf_counter() - started
    finally:
        stopping = time.perf_counter()
        orch.stop()
        teardown = time.perf_counter() - stopping
    return {"boot": boot, "teardown": teardown}


def by_hand_once(root: Path, ports: list[int], config: str | None) -> dict[str, float]:
    env = base_environment(os.environ)  # what the local backend gives a service
    if config is not None:
        env[CONFIG_VAR] = config
    procs = []
    started = time.perf_counter()
    try:
        for port in ports:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "benchsvc.server"],
                    cwd=root,
                    env={**env, "PORT": str(port)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                )
            )
            poll_until_answers(port)
        boot = time.perf_counter() - started
    finally:
        stopping = time.perf_counter()
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        teardown = time.perf_counter() - stopping
    return {"boot": boot, "teardown": teardown}


def take_data_files(root: Path, expected: int) -> None:
    """Each measured service wrote its data file; removed for the next round."""
    files = list(root.glob(".coverage.*"))
    if len(files) != expected:
        raise RuntimeError(f"{len(files)} data files written, {expected} expected: {files}")
    for path in files:
        path.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--services", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ports = [free_port() for _ in range(args.services)]
        compose = write_project(root, ports)
        config = coverage.Coverage(data_file=str(root / ".coverage"), source=[str(root)]).config
        measured = ServiceCoverage.from_config(config, cwd=str(root))
        os.chdir(root)  # the services' cwd: the compose file's directory
        for n in range(args.reps + 1):  # the first round warms up, not counted
            row = {
                "stack": stack_once(compose, None),
                "stack_measured": stack_once(compose, measured),
            }
            take_data_files(root, args.services)
            row["hand"] = by_hand_once(root, ports, None)
            row["hand_measured"] = by_hand_once(root, ports, measured.config)
            take_data_files(root, args.services)
            if n:
                rounds.append(row)
                print(
                    f"round {n}: boot stack {row['stack']['boot']:.3f}s / measured "
                    f"{row['stack_measured']['boot']:.3f}s; by hand {row['hand']['boot']:.3f}s"
                    f" / measured {row['hand_measured']['boot']:.3f}s",
                    flush=True,
                )

    def column(kind: str, phase: str) -> list[float]:
        return [r[kind][phase] for r in rounds]

    def cost(kind: str, phase: str) -> list[float]:
        return [r[f"{kind}_measured"][phase] - r[kind][phase] for r in rounds]

    result: dict[str, Any] = {"services": args.services, "reps": args.reps}
    print()
    print(f"{args.services} host-run Python services in a chain, measured by coverage or not")
    for phase in ("boot", "teardown"):
        print(f"  {phase}")
        for kind, label in (
            ("stack", "stack, not measured"),
            ("stack_measured", "stack, measured"),
            ("hand", "by hand, not measured"),
            ("hand_measured", "by hand, coverage's own"),
        ):
            print(f"    {label:<28}{shown(column(kind, phase))}")
            result[f"{kind}_{phase}_s"] = spread(column(kind, phase))
        ours, theirs = cost("stack", phase), cost("hand", phase)
        beyond = [a - b for a, b in zip(ours, theirs, strict=True)]
        print(f"    cost of measuring, ours     {shown(ours, unit='ms', scale=1000)}")
        print(f"    cost of measuring, by hand  {shown(theirs, unit='ms', scale=1000)}")
        print(f"    ours beyond coverage's own  {shown(beyond, unit='ms', scale=1000)}")
        result[f"cost_{phase}_s"] = spread(ours)
        result[f"cost_by_hand_{phase}_s"] = spread(theirs)
        result[f"beyond_{phase}_s"] = spread(beyond)
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
