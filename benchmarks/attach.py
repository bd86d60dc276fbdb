"""Attaching to a kept stack: what a developer's next `pytest` pays before its first test.

    python benchmarks/attach.py [--reps 7]

Keeps the seed-shaped stack (real PostgreSQL and Redis, eight stand-ins; see boot.py),
then measures, over several repetitions (median and min-max):

- attach: a fresh runtime reads the record, checks the fingerprint, finds every
  service running and probes each once, then hands out every handle;
- the physical limit, measured in the same run: the same probes, one per service, all
  at once, written by hand (what any tool must do to know the stack is healthy);
- a whole `pytest` run of one test that uses the stack, attached, against the same
  run of a test that uses no service (pytest's own start-up, not ours).

Then stops the stack with `pyairtable down`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from boot import compose_text

from pytest_pyairtable.probes.checks import probe_once
from pytest_pyairtable.session.devstack import up
from pytest_pyairtable.session.kept import KeptStack
from pytest_pyairtable.session.runtime import runtime_for
from pytest_pyairtable.session.settings import resolve


def summarize(samples: list[float]) -> str:
    return (
        f"{statistics.median(samples) * 1000:7.1f} ms "
        f"(min {min(samples) * 1000:.1f}, max {max(samples) * 1000:.1f})"
    )


def runtime(project: Path, keep: bool = False):  # type: ignore[no-untyped-def]
    given = {"keep": keep}
    settings = resolve(lambda s: given.get(s.name), lambda s: None, os.environ)
    return runtime_for(settings, project, project)


def attach_once(project: Path) -> float:
    started = time.perf_counter()
    rt = runtime(project)
    assert rt.attached() is not None, rt.notices
    for name in rt.topology():
        rt.handle(name)
    return time.perf_counter() - started


def probes_by_hand(kept: KeptStack) -> float:
    started = time.perf_counter()
    specs = [(s.spec.probe, s.handle.log_path) for s in kept.services.values()]
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        failures = list(pool.map(lambda s: probe_once(s[0], 1.0, s[1]), specs))
    assert not any(failures), failures
    return time.perf_counter() - started


def pytest_once(project: Path, test: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "docker-compose.yml").write_text(compose_text(0.05))
        (project / "test_stack.py").write_text("def test_it(pyairtable_stack): pass\n")
        (project / "test_plain.py").write_text("def test_it(): pass\n")
        keeper = runtime(project, keep=True)
        keeper.say = lambda line: None
        assert up(keeper) == 0, keeper.notices
        try:
            kept = KeptStack.load(keeper.record_path)
            assert kept is not None
            attach_once(project)  # warm: imports, the topology cache
            attach = [attach_once(project) for _ in range(args.reps)]
            limit = [probes_by_hand(kept) for _ in range(args.reps)]
            attached = [pytest_once(project, "test_stack.py") for _ in range(args.reps)]
            plain = [pytest_once(project, "test_plain.py") for _ in range(args.reps)]
        finally:
            subprocess.run(
                [sys.executable, "-m", "pytest_pyairtable.cli", "down"],
                cwd=project,
                capture_output=True,
                check=False,
            )
    services = len(kept.services)
    print(f"attach to a kept stack of {services} services, {args.reps} repetitions:")
    print(f"  attach (record, fingerprint, probes, handles) {summarize(attach)}")
    print(f"  the same probes by hand, all at once          {summarize(limit)}")
    ratio = statistics.median(attach) / statistics.median(limit)
    print(f"  attach / physical limit                       {ratio:7.2f}x")
    print(f"  pytest, one test using the kept stack         {summarize(attached)}")
    print(f"  pytest, one test using no service             {summarize(plain)}")
    extra = statistics.median(attached) - statistics.median(plain)
    print(f"  what attaching adds to a pytest run           {extra * 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
