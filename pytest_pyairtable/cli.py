"""The ``pyairtable`` command: the seed's shell scripts as subcommands over the same core
as the pytest plugin.

    pyairtable up [SERVICE...] [--detach]    start-services.sh
    pyairtable down [--emergency] [--volumes] stop-services.sh
    pyairtable status [--json]                docker-compose ps
    pyairtable wait URL... [--table T]        scripts/wait-for-*.sh
    pyairtable logs [SERVICE] [-f]            docker-compose logs
    pyairtable graph [--dot]                  the tiers, derived from depends_on
    pyairtable config [--format json|yaml]    docker compose config, as the plugin sees it
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import progress
from .backends.kept import KeptStack, state_path, stop_kept
from .backends.local import remove_stale_runs
from .backends.process import pid_alive
from .errors import PyAirtableError
from .model import graph
from .probes.checks import probe_once
from .probes.waitcmd import describe, wait_for
from .redact import Redactor
from .session import StackSession, load_for_config
from .settings import flag_value, resolve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyairtable", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-f",
        "--compose-file",
        action="append",
        default=[],
        help="compose file, repeatable to merge several (default: COMPOSE_FILE, else "
        "compose.yaml / docker-compose.yml and its override file, in this directory)",
    )
    parser.add_argument("--env-file", help="env file (default: .env beside the compose file)")
    parser.add_argument("--profile", action="append", default=[], help="activate a profile")
    parser.add_argument("--backend", help="local (default) or external")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="check prerequisites, start in dependency order, print URLs")
    up.add_argument("services", nargs="*", help="only these and what they need")
    up.add_argument("-d", "--detach", action="store_true", help="leave it running and return")

    down = sub.add_parser("down", help="stop the running stack, in reverse dependency order")
    down.add_argument(
        "--emergency", action="store_true", help="SIGKILL at once, no data-safety step"
    )
    down.add_argument(
        "-v",
        "--volumes",
        action="store_true",
        help="also remove logs and leftovers of killed runs [env CLEANUP_VOLUMES=true]",
    )

    status = sub.add_parser("status", help="state, health, URL and uptime of each service")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    wait = sub.add_parser("wait", help="wait until each URL is ready; exit 0 when all are")
    wait.add_argument(
        "urls", nargs="+", metavar="URL", help="postgres://, redis://, http(s)://, tcp://host:port"
    )
    wait.add_argument("--timeout", type=float, help="seconds per URL [env TIMEOUT, default 150]")
    wait.add_argument(
        "--interval",
        type=float,
        help="longest pause between attempts [env RETRY_INTERVAL, default 0.5]",
    )
    wait.add_argument("--table", action="append", default=[], help="a table that must exist")
    wait.add_argument("--migrations-table", help="a migrations table that must exist")

    logs = sub.add_parser("logs", help="print service logs")
    logs.add_argument("service", nargs="?", help="one service (default: all)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines from the end (default 50)")

    graph_cmd = sub.add_parser("graph", help="print the services by tier")
    graph_cmd.add_argument("--dot", action="store_true", help="print Graphviz dot instead")

    config = sub.add_parser(
        "config", help="the stack as the plugin sees it, shaped as `docker compose config`"
    )
    config.add_argument("--format", choices=("json", "yaml"), default="json")
    config.add_argument("--show-secrets", action="store_true", help="do not mask secret values")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "wait":
            return cmd_wait(args, os.environ)
        session = _session(args)
        command = {
            "up": cmd_up,
            "down": cmd_down,
            "status": cmd_status,
            "logs": cmd_logs,
            "graph": cmd_graph,
            "config": cmd_config,
        }[args.command]
        return command(args, session)
    except PyAirtableError as exc:
        print(f"pyairtable: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pyairtable status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _session(args: argparse.Namespace) -> StackSession:
    given = {
        "compose_file": args.compose_file,
        "env_file": args.env_file,
        "profile": args.profile,
        "backend": args.backend,
        "keep": getattr(args, "detach", False),
    }
    settings = resolve(lambda s: given.get(s.name), lambda s: None, os.environ)
    cwd = Path.cwd()
    session = load_for_config(settings, cwd, cwd)
    if session.error is not None:
        raise session.error
    if session.stack is None:
        raise PyAirtableError(f"no compose file at {session.compose_file}. Fix: pass -f FILE.")
    for warning in session.stack.warnings:
        print(f"pyairtable: warning: {session.redact(warning)}", file=sys.stderr)
    return session


def _kept(session: StackSession) -> KeptStack:
    kept = KeptStack.load(state_path(session.compose_file))
    if kept is None:
        raise PyAirtableError(
            f"no running stack is recorded for {session.compose_file}. "
            "Fix: start one with `pyairtable up` (or --detach)."
        )
    return kept


def cmd_up(args: argparse.Namespace, session: StackSession) -> int:
    assert session.stack is not None
    session.say = print
    if progress.wanted(sys.stdout):
        display = progress.TtyProgress(sys.stdout)
        session.progress = display

        def say(line: str) -> None:
            display.clear()
            print(line, flush=True)

        session.say = say
    print(
        f"pyairtable: {session.compose_file}: {len(session.stack.services)} services, "
        f"backend {session.settings['backend']}"
    )
    if args.services:
        session.needed = set(session.stack.require(args.services))
    env_file = session.settings["env_file"] or session.compose_file.parent / ".env"
    if not Path(env_file).is_file():
        print(f"pyairtable: note: no {env_file}; variables come from the environment only")
    problems = session.preflight()
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise PyAirtableError(f"{len(problems)} prerequisite(s) missing:\n{listed}")
    session.up_until_interrupted()
    failed = session.orch is not None and any(r.error for r in session.orch.runs.values())
    return 1 if failed else 0


def cmd_down(args: argparse.Namespace, session: StackSession) -> int:
    path = state_path(session.compose_file)
    kept = _kept(session)
    if kept.owner_pid and kept.owner_pid != os.getpid() and pid_alive(kept.owner_pid):
        # A foreground `pyairtable up` / `pytest --pyairtable-up` owns it: ask it to stop,
        # as Ctrl-C would, so its own reverse-order shutdown runs.
        os.kill(kept.owner_pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while pid_alive(kept.owner_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        print(f"pyairtable: asked the owning process {kept.owner_pid} to stop the stack")
    else:
        stop_kept(kept, emergency=args.emergency)
    path.unlink(missing_ok=True)
    if args.volumes or flag_value(os.environ.get("CLEANUP_VOLUMES", "")):
        shutil.rmtree(kept.logs_dir, ignore_errors=True)
        remove_stale_runs(Path(kept.run_dir).parent)
        print("pyairtable: removed logs and leftovers of killed runs")
    return 0


def status_rows(session: StackSession, kept: KeptStack) -> list[dict[str, Any]]:
    assert session.stack is not None
    rows = []
    for svc in sorted(kept.services.values(), key=lambda s: (s.handle.tier, s.handle.name)):
        name = svc.handle.name
        spec = session.stack.services.get(name)
        health, error = "unknown", ""
        if not svc.alive:
            state, health = "exited", "unhealthy"
        else:
            state = "running"
            if spec is not None:
                failure = probe_once(spec.probe)
                health = "healthy" if failure is None else "unhealthy"
                error = session.redact(failure or "")
        rows.append(
            {
                "service": name,
                "state": state,
                "health": health,
                "tier": svc.handle.tier,
                "url": session.redact(svc.handle.url),
                "uptime_seconds": round(time.time() - svc.started, 1),
                "error": error,
            }
        )
    return rows


def cmd_status(args: argparse.Namespace, session: StackSession) -> int:
    rows = status_rows(session, _kept(session))
    if args.json:
        print(json.dumps({"compose_file": str(session.compose_file), "services": rows}, indent=2))
    else:
        for row in rows:
            note = f"  ({row['error']})" if row["error"] else ""
            print(
                f"{row['service']:<22} {row['state']:<8} {row['health']:<10} tier {row['tier']}  "
                f"{row['url']:<50} up {row['uptime_seconds']:.0f}s{note}"
            )
    return 0 if all(r["health"] == "healthy" for r in rows) else 1


def cmd_wait(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    timeout = args.timeout if args.timeout is not None else float(environ.get("TIMEOUT", 150))
    interval = (
        args.interval if args.interval is not None else float(environ.get("RETRY_INTERVAL", 0.5))
    )
    retries = int(environ["MAX_RETRIES"]) if environ.get("MAX_RETRIES") else None
    redact = Redactor([])
    failed = 0
    for url in args.urls:
        result = wait_for(
            url,
            timeout=timeout,
            interval=interval,
            max_retries=retries,
            tables=args.table,
            migrations_table=args.migrations_table,
        )
        print(describe(result, redact), file=sys.stdout if result.ok else sys.stderr)
        failed += not result.ok
    return 1 if failed else 0


def cmd_logs(args: argparse.Namespace, session: StackSession) -> int:
    kept = _kept(session)
    names = [args.service] if args.service else list(kept.services)
    unknown = [n for n in names if n not in kept.services]
    if unknown:
        raise PyAirtableError(
            f"no service {unknown[0]!r} in the running stack; it has: {', '.join(kept.services)}."
        )
    paths = {n: Path(kept.logs_dir) / f"{n}.log" for n in names}
    prefix = len(names) > 1
    offsets = {}
    for name, path in paths.items():
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        _print_lines(name, lines[-args.lines :], prefix, session.redact)
        offsets[name] = path.stat().st_size if path.exists() else 0
    while args.follow:
        time.sleep(0.2)
        for name, path in paths.items():
            if path.exists() and path.stat().st_size > offsets[name]:
                with open(path, "rb") as f:
                    f.seek(offsets[name])
                    chunk = f.read()
                offsets[name] += len(chunk)
                _print_lines(
                    name, chunk.decode(errors="replace").splitlines(), prefix, session.redact
                )
    return 0


def _print_lines(name: str, lines: Sequence[str], prefix: bool, redact: Redactor) -> None:
    for line in lines:
        print(f"{name:<20}| {redact(line)}" if prefix else redact(line), flush=True)


def cmd_graph(args: argparse.Namespace, session: StackSession) -> int:
    edges = session.topology()
    print("\n".join(render_dot(edges) if args.dot else render_tiers(edges)))
    return 0


def cmd_config(args: argparse.Namespace, session: StackSession) -> int:
    from .model.render import dump, render_config

    assert session.stack is not None
    print(dump(render_config(session.stack, show_secrets=args.show_secrets), args.format))
    return 0


def render_tiers(edges: Mapping[str, list[str]]) -> list[str]:
    tiers = graph.tiers(edges)
    lines = []
    for tier in sorted(set(tiers.values())):
        for name in sorted(n for n, t in tiers.items() if t == tier):
            deps = ", ".join(sorted(edges[name])) or "-"
            lines.append(f"tier {tier}  {name:<22} needs: {deps}")
    return lines


def render_dot(edges: Mapping[str, list[str]]) -> list[str]:
    lines = ["digraph pyairtable {", "  rankdir=BT;"]
    lines += [f'  "{n}" -> "{d}";' for n in sorted(edges) for d in sorted(edges[n])]
    lines += [f'  "{n}";' for n in sorted(edges) if not edges[n]]
    return [*lines, "}"]


if __name__ == "__main__":
    raise SystemExit(main())
