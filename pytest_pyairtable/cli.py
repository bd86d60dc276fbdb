"""The ``pyairtable`` command: the same core as the plugin, for people and CI steps."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from . import graph
from .errors import PyAirtableError
from .session import load_for_config
from .settings import resolve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyairtable", description=__doc__)
    parser.add_argument("-f", "--compose-file", help="compose file (default: ./docker-compose.yml)")
    parser.add_argument("--env-file", help="env file (default: .env beside the compose file)")
    parser.add_argument("--profile", action="append", default=[], help="activate a profile")
    parser.add_argument("--backend", help="how services run (default: local)")
    sub = parser.add_subparsers(dest="command", required=True)
    graph_cmd = sub.add_parser("graph", help="print the services by tier")
    graph_cmd.add_argument("--dot", action="store_true", help="print Graphviz dot instead")
    up = sub.add_parser("up", help="boot the stack, print its URLs, stop on Ctrl-C")
    up.add_argument("services", nargs="*", help="only these and what they need")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    given = {
        "compose_file": args.compose_file,
        "env_file": args.env_file,
        "profile": args.profile,
        "backend": args.backend,
    }
    try:
        settings = resolve(lambda s: given.get(s.name), lambda s: None, os.environ)
        cwd = Path.cwd()
        session = load_for_config(settings, cwd, cwd)
        if session.error is not None:
            raise session.error
        if session.stack is None:
            raise PyAirtableError(f"no compose file at {session.compose_file}. Fix: pass -f FILE.")
        if args.command == "graph":
            print(
                "\n".join(
                    render_dot(session.topology()) if args.dot else render_tiers(session.topology())
                )
            )
            return 0
        session.say = print
        if args.services:
            session.needed = set(session.stack.require(args.services))
        session.up_until_interrupted()
        return 0
    except PyAirtableError as exc:
        print(f"pyairtable: {exc}", file=sys.stderr)
        return 2


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
