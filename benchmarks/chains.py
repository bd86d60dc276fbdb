"""What the chain benchmarks share: the seed-shaped chain (each stand-in ready ``delay``
seconds after it starts, each depending on the one before), pytest runs timed from
outside, the start-up timeline a run writes, and medians with their spread.

Nothing here installs anything; every process and container a benchmark starts, it
stops (and removes) itself.
"""

from __future__ import annotations

import compileall
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chain_names(count: int) -> list[str]:
    return [f"svc{i}" for i in range(1, count + 1)]


def standin_argv(
    python: str, name: str, port: int, delay: float, upstream: int | None
) -> list[str]:
    """The seed's stand-in: listens after ``delay``; healthy while its upstream is."""
    argv = [python, "-m", "pytest_pyairtable.standin", "--name", name]
    argv += ["--port", str(port), "--startup-delay", str(delay)]
    return argv + (["--upstream", f"http://127.0.0.1:{upstream}"] if upstream else [])


def answers(port: int) -> bool:
    """One `GET /health` from the host: 200 or not (refused, reset, 503)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def poll_until_answers(port: int, deadline: float = 60.0) -> None:
    """The reference's wait: a `GET /health` every millisecond until it answers 200."""
    give_up = time.monotonic() + deadline
    while not answers(port):
        if time.monotonic() > give_up:
            raise RuntimeError(f"port {port} never answered")
        time.sleep(0.001)


def env_with_project() -> dict[str, str]:
    """This checkout first on PYTHONPATH: subprocesses run its code, not an install's.
    Its bytecode is brought up to date first, as an install's is: under
    PYTHONDONTWRITEBYTECODE=1 an edited checkout would be compiled again on every run."""
    compileall.compile_dir(ROOT / "pytest_pyairtable", quiet=1)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    return env


def pytest_once(project: Path, args: Sequence[str], env: dict[str, str]) -> float:
    """Wall seconds of one whole `python -m pytest` process, start-up included."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pytest {' '.join(args)} failed:\n{done.stdout[-3000:]}")
    return took


def ready_seconds(timeline: Path) -> dict[str, float]:
    """Each service's time from 'could start' to 'ready', from a run's Chrome trace."""
    events = json.loads(timeline.read_text())["traceEvents"]
    return {
        e["args"]["service"]: e["dur"] / 1e6
        for e in events
        if e.get("ph") == "X" and e["name"].endswith(" starting")
    }


def spread(samples: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def shown(samples: Sequence[float], unit: str = "s", scale: float = 1.0) -> str:
    s = spread([x * scale for x in samples])
    return f"{s['median']:.3f}{unit} (min {s['min']:.3f}, max {s['max']:.3f})"


def write_json(path: Path | None, result: dict[str, object]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        print(f"written: {path}")
