"""The local backend against the physical limit, on a chain of stand-ins.

    python benchmarks/chain_local.py [--reps 7] [--services 7] [--delay 0.5] [--json FILE]

A seed-shaped chain: each stand-in ready ``--delay`` seconds after it starts, each
depending (service_healthy) on the one before. Per round, interleaved, so a busy
machine slows all three alike:

- chain: pytest running one test that needs the last service (the local backend boots
  the whole chain, the test passes, the chain is stopped);
- plain: pytest running one test that needs no service, same project (pytest's and the
  plugin's start-up: not the chain's cost; the plugin's own cost is boot.py's row);
- by hand: the same commands started one by one from this process, each the moment
  the one before answers `GET /health` (polled every 1 ms), then stopped in reverse
  order (SIGTERM, wait for exit). Its interpreter start-up is not counted.

Row: (chain - plain) / by hand, per round; the median and the spread over the rounds.
Per service: our time from 'could start' to 'ready' (the run's timeline) minus the same
service's start-to-answer by hand in the same round: what launching and detecting cost
us beyond the service itself.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chains import (
    chain_names,
    env_with_project,
    free_port,
    poll_until_answers,
    pytest_once,
    ready_seconds,
    shown,
    spread,
    standin_argv,
    write_json,
)


def compose_text(names: list[str], ports: dict[str, int], delay: float) -> str:
    lines = ["services:"]
    for i, name in enumerate(names):
        before = names[i - 1] if i else None
        argv = standin_argv(sys.executable, name, ports[name], delay, ports.get(before or ""))
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


def by_hand(
    names: list[str], ports: dict[str, int], delay: float, env: dict[str, str]
) -> tuple[float, dict[str, float]]:
    """(seconds for the whole chain up and down, each service's start-to-answer)."""
    started = time.perf_counter()
    each: dict[str, float] = {}
    procs = []
    try:
        for i, name in enumerate(names):
            before = ports[names[i - 1]] if i else None
            began = time.perf_counter()
            procs.append(
                subprocess.Popen(
                    standin_argv(sys.executable, name, ports[name], delay, before),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
            poll_until_answers(ports[name])
            each[name] = time.perf_counter() - began
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait()
    return time.perf_counter() - started, each


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
    env = env_with_project()
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        ports = {name: free_port() for name in names}
        (project / "docker-compose.yml").write_text(compose_text(names, ports, args.delay))
        (project / "test_chain.py").write_text(
            f"def test_chain(pyairtable_{names[-1]}):\n    pass\n"
        )
        (project / "test_plain.py").write_text("def test_plain():\n    pass\n")
        chain_args = ["test_chain.py", "--pyairtable-timeline", "timeline.json"]
        # warm-up, not counted: the page cache, the compose topology cache
        by_hand(names, ports, args.delay, env)
        pytest_once(project, chain_args, env)
        pytest_once(project, ["test_plain.py"], env)
        for n in range(args.reps):
            hand, hand_each = by_hand(names, ports, args.delay, env)
            chain = pytest_once(project, chain_args, env)
            ours_each = ready_seconds(project / "timeline.json")
            plain = pytest_once(project, ["test_plain.py"], env)
            ratio = (chain - plain) / hand
            rounds.append(
                {
                    "by_hand": hand,
                    "chain": chain,
                    "plain": plain,
                    "ratio": ratio,
                    "overhead": {s: ours_each[s] - hand_each[s] for s in names},
                }
            )
            print(
                f"round {n + 1}: by hand {hand:.3f}s, pytest needing the chain {chain:.3f}s, "
                f"plain pytest {plain:.3f}s: ratio {ratio:.4f}",
                flush=True,
            )
    ratios = [r["ratio"] for r in rounds]
    per_service = {s: [r["overhead"][s] for r in rounds] for s in names}
    print()
    print(f"local backend, {args.services}-service chain, each ready {args.delay}s after start")
    print(f"  by hand (1 ms polling)        {shown([r['by_hand'] for r in rounds])}")
    print(f"  pytest needing the chain      {shown([r['chain'] for r in rounds])}")
    print(f"  plain pytest                  {shown([r['plain'] for r in rounds])}")
    print(f"  (chain - plain) / by hand     {shown(ratios, unit='')}   target <= 1.03")
    print("  per service, ours minus by hand (launch + detection), ms:")
    for name in names:
        print(f"    {name:<8} {shown(per_service[name], unit='ms', scale=1000)}")
    noise = statistics.pstdev(ratios) if len(ratios) > 1 else 0.0
    print(f"  round-to-round noise of the ratio: stdev {noise:.4f}")
    write_json(
        args.json,
        {
            "services": args.services,
            "delay": args.delay,
            "reps": args.reps,
            "ratio": spread(ratios),
            "ratio_stdev": noise,
            "by_hand_s": spread([r["by_hand"] for r in rounds]),
            "chain_s": spread([r["chain"] for r in rounds]),
            "plain_s": spread([r["plain"] for r in rounds]),
            "per_service_overhead_s": {s: spread(v) for s, v in per_service.items()},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
