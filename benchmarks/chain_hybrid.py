"""A stack placed over the host and containers (--pyairtable-local) against its physical
limit: a chain whose links alternate between containers and host processes.

    python benchmarks/chain_hybrid.py [--reps 5] [--services 6] [--delay 0.5] [--json FILE]

Each link is a stand-in ready ``--delay`` seconds after it starts and healthy only while
the link before it answers, which it names by service name: a container reaches a
host-run link through the host entry the plugin adds, a host-run link reaches a container
through its rewritten environment. Containers use host networking and are probed from
the host, as host processes are. Per round, interleaved:

- ours: pytest running one test that needs the last link, with the even links placed on
  the host (``--pyairtable-local``), minus pytest running a test that needs no service;
- the limit: the same containers (created beforehand by compose, untimed, with the same
  host entries) started by hand with `docker start`, and the same host commands started
  with their addresses already resolved, each the moment the one before answers `GET
  /health` (polled every 1 ms); then stopped in reverse order (`docker stop`, SIGTERM and
  wait) and the containers removed.
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

import compose_stack
from chains import (
    chain_names,
    env_with_project,
    free_port,
    poll_until_answers,
    pytest_once,
    shown,
    spread,
    write_json,
)

from pytest_pyairtable.backends.composedetect import detect_compose


def on_host(index: int) -> bool:
    return index % 2 == 1  # svc2, svc4, ...: the code under test, between containers


def compose_text(names: list[str], ports: dict[str, int], delay: float) -> str:
    """The stack as a team's compose file has it: every link an image, its upstream in
    its environment by service name; the host-run ones also say how to run them from a
    working tree."""
    lines = ["services:"]
    for i, name in enumerate(names):
        before = names[i - 1] if i else None
        argv = (
            f"-m, pytest_pyairtable.standin, --name, {name}, --port, '{ports[name]}', "
            f"--startup-delay, '{delay}'"
        )
        upstream = f", UPSTREAM_URLS: 'http://{before}:{ports[before]}'" if before else ""
        lines += [
            *compose_stack._base(name)[:-2],
            f"    environment: {{PYTHONPATH: /app{upstream}}}",
            "    stop_grace_period: 5s",
            f"    command: [/usr/bin/python3, {argv}]",
        ]
        x = f'probe: {{http: "http://127.0.0.1:{ports[name]}/health"}}'
        if on_host(i):
            x += f", local: {{command: [{sys.executable}, {argv}]}}"
        lines.append(f"    x-pyairtable: {{{x}}}")
        if before:
            lines.append(f"    depends_on: {{{before}: {{condition: service_healthy}}}}")
    return "\n".join(lines) + "\n"


def reference_text(names: list[str], ports: dict[str, int], delay: float) -> str:
    """The containers alone, with the host entries the plugin gives them."""
    lines = ["services:"]
    for i, name in enumerate(names):
        if on_host(i):
            continue
        before = names[i - 1] if i else None
        upstream = f", --upstream, 'http://{before}:{ports[before]}'" if before else ""
        lines += [
            *compose_stack._base(name),
            f"    command: [/usr/bin/python3, -m, pytest_pyairtable.standin, --name, {name}, "
            f"--port, '{ports[name]}', --startup-delay, '{delay}'{upstream}]",
        ]
        if before:
            lines.append(f'    extra_hosts: ["{before}:127.0.0.1"]')
    return "\n".join(lines) + "\n"


def run(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return done.stdout


def by_hand(
    command: list[str], file: Path, names: list[str], ports: dict[str, int], delay: float
) -> dict[str, float]:
    project = f"benchhybrid-{os.getpid()}-{os.urandom(3).hex()}"
    base = [*command, "-f", str(file), "-p", project]
    run(*base, "up", "--no-start")  # creating is compose's job; not timed
    ids = {
        name: run(
            "docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}",
            "--filter", f"label=com.docker.compose.service={name}",
        ).strip()
        for i, name in enumerate(names)
        if not on_host(i)
    }  # fmt: skip
    env = env_with_project()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        started = time.perf_counter()
        for i, name in enumerate(names):
            if on_host(i):
                before = names[i - 1]
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", "pytest_pyairtable.standin", "--name", name,
                     "--port", str(ports[name]), "--startup-delay", str(delay),
                     "--upstream", f"http://127.0.0.1:{ports[before]}"],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            else:
                run("docker", "start", ids[name])
            poll_until_answers(ports[name])
        boot = time.perf_counter() - started
        down = time.perf_counter()
        for i, name in reversed(list(enumerate(names))):
            if on_host(i):
                processes[name].send_signal(signal.SIGTERM)
                processes[name].wait(30)
            else:
                run("docker", "stop", ids[name])
        run("docker", "rm", *ids.values())
        teardown = time.perf_counter() - down
    finally:
        for proc in processes.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        run(*base, "down")
    return {"boot": boot, "teardown": teardown, "total": boot + teardown}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--services", type=int, default=6)
    parser.add_argument("--delay", type=float, default=0.5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    compose_stack.build_image()
    command, found = detect_compose()
    print(f"compose: {found} ({command[0]})")
    names = chain_names(args.services)
    host_run = [n for i, n in enumerate(names) if on_host(i)]
    env = env_with_project()
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        ports = {name: free_port() for name in names}
        (project / "docker-compose.yml").write_text(compose_text(names, ports, args.delay))
        reference = project / "reference.yml"
        reference.write_text(reference_text(names, ports, args.delay))
        (project / "test_chain.py").write_text(
            f"def test_chain(pyairtable_{names[-1]}):\n    pass\n"
        )
        (project / "test_plain.py").write_text("def test_plain():\n    pass\n")
        chain_args = ["test_chain.py", "--pyairtable-local", ",".join(host_run)]
        by_hand(command, reference, names, ports, args.delay)  # warm-up, not counted
        pytest_once(project, chain_args, env)
        for n in range(args.reps):
            limit = by_hand(command, reference, names, ports, args.delay)
            chain = pytest_once(project, chain_args, env)
            plain = pytest_once(project, ["test_plain.py"], env)
            ours = chain - plain
            rounds.append({"ours": ours, "limit": limit["total"], "ratio": ours / limit["total"]})
            print(
                f"round {n + 1}: ours {ours:.2f}s (pytest {chain:.2f} - {plain:.2f}), limit "
                f"{limit['total']:.2f}s (boot {limit['boot']:.2f} + down {limit['teardown']:.2f})"
                f": {ours / limit['total']:.3f} x limit",
                flush=True,
            )

    def col(key: str) -> list[float]:
        return [r[key] for r in rounds]

    print()
    print(
        f"placed chain of {args.services} ({', '.join(host_run)} on the host, the rest in "
        f"containers), each ready {args.delay}s after start; {args.reps} rounds"
    )
    print(f"  ours: pytest needing the chain - plain pytest   {shown(col('ours'))}")
    print(f"  limit: started by hand, stopped in reverse       {shown(col('limit'))}")
    print(f"  ours / limit (target <= 1.10)                   {shown(col('ratio'), unit='')}")
    write_json(
        args.json,
        {"services": args.services, "delay": args.delay, "reps": args.reps,
         **{key: spread(col(key)) for key in rounds[0]}},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
