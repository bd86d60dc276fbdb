"""The ``pyairtable`` command: the seed's shell scripts as subcommands over the same core
as the pytest plugin.

    pyairtable up [SERVICE...] [--detach]    start-services.sh
    pyairtable down [--emergency] [--volumes] stop-services.sh
    pyairtable restart [SERVICE...]           docker-compose restart SERVICE
    pyairtable status [--json]                docker-compose ps
    pyairtable wait URL... [--table T]        scripts/wait-for-*.sh
    pyairtable logs [SERVICE] [-f]            docker-compose logs (or the last run's)
    pyairtable graph [--dot]                  the tiers, derived from depends_on
    pyairtable config [--format json|yaml]    docker compose config, as the plugin sees it

Global options (-f, --env-file, --profile, --backend, --free-ports, --inherit-env) may
also follow the command, as in compose: `pyairtable graph --profile debug`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...model import graph
from ...session.runtime import Runtime, runtime_for
from ...session.settings import flag_value, resolve
from ...support.errors import PyAirtableError
from ...support.redact import Redactor, secret_values
from ...support.signals import install_sigterm_handler, restore_sigterm_handler
from . import progress
from .options import given, global_options, merge_late


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyairtable", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    _commands(sub)
    return parser


def _commands(sub: Any) -> None:
    def command(name: str, help: str) -> argparse.ArgumentParser:
        common = argparse.ArgumentParser(add_help=False)
        global_options(common, late=True, short_f=name != "logs")
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help, parents=[common])
        return parser

    up = command("up", "check prerequisites, start in dependency order, print URLs")
    up.add_argument("services", nargs="*", help="only these and what they need")
    up.add_argument("-d", "--detach", action="store_true", help="leave it running and return")

    down = command("down", "stop the running stack, in reverse dependency order")
    down.add_argument(
        "--emergency", action="store_true", help="SIGKILL at once, no data-safety step"
    )
    down.add_argument(
        "-v",
        "--volumes",
        action="store_true",
        help="also remove logs and leftovers of killed runs [env CLEANUP_VOLUMES=true]",
    )

    restart = command("restart", "restart services of the running stack, wait until healthy")
    restart.add_argument("services", nargs="*", help="these (default: all)")
    restart.add_argument(
        "--no-deps", action="store_true", help="not the dependents marked restart: true"
    )
    restart.add_argument(
        "-t", "--timeout", type=float, help="seconds before SIGKILL (default: stop_grace_period)"
    )

    status = command("status", "state, health, URL and uptime of each service")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    wait = command("wait", "wait until each URL is ready; exit 0 when all are")
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

    logs = command("logs", "print service logs (of the last run when none runs)")
    logs.add_argument("service", nargs="?", help="one service (default: all)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument(
        "-n", "--lines", type=_lines, default=50, help="lines from the end (default 50; 0: none)"
    )

    graph_cmd = command("graph", "print the services by tier")
    graph_cmd.add_argument("--dot", action="store_true", help="print Graphviz dot instead")

    config = command("config", "the stack as the plugin sees it, shaped as `docker compose config`")
    config.add_argument("--format", choices=("json", "yaml"), default="json")
    config.add_argument("--show-secrets", action="store_true", help="do not mask secret values")


def parse(argv: list[str] | None) -> argparse.Namespace:
    return merge_late(_parser().parse_args(argv))


def _lines(text: str) -> int:
    """A count of lines, 0 or more; argparse reports anything else as a usage error."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of lines (0 or more)")
    return value


def say(line: str) -> None:
    print(line, flush=True)


def _say(runtime: Runtime, *, err: bool = False) -> Callable[[str], None]:
    """Every line the command prints, through the runtime's redaction (the environment's
    secrets and the patterns; the stack's secrets too once it was read)."""

    def write(line: str) -> None:
        print(runtime.redact(line), file=sys.stderr if err else sys.stdout, flush=True)

    return write


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    old_sigterm = install_sigterm_handler()  # SIGTERM stops as gracefully as Ctrl-C
    runtime: Runtime | None = None
    try:
        if args.command == "wait":
            return cmd_wait(args, os.environ)
        command = {
            "up": cmd_up,
            "down": cmd_down,
            "restart": cmd_restart,
            "status": cmd_status,
            "logs": cmd_logs,
            "graph": cmd_graph,
            "config": cmd_config,
        }[args.command]
        runtime = _runtime(args)
        return command(args, runtime)
    except PyAirtableError as exc:
        # with the stack's secrets where it was read, else the environment's
        redact = runtime.redact if runtime else Redactor(secret_values(os.environ))
        print(redact(f"pyairtable: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pyairtable status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        restore_sigterm_handler(old_sigterm)


# down, status and logs act on the recorded stack: the record is enough, the compose
# file is not read (its variables may be gone from the shell).


def cmd_down(args: argparse.Namespace, runtime: Runtime) -> int:
    from . import stackcmds  # (with the kept stack's machinery: not for `config`)

    return stackcmds.down(
        runtime.record_path,
        emergency=args.emergency,
        volumes=args.volumes or flag_value(os.environ.get("CLEANUP_VOLUMES", "")),
        hook=runtime.hook,
        say=_say(runtime),
    )


def cmd_status(args: argparse.Namespace, runtime: Runtime) -> int:
    from . import stackcmds  # (with the kept stack's machinery: not for `config`)

    return stackcmds.status(runtime.record_path, as_json=args.json, say=_say(runtime), emit=say)


def cmd_logs(args: argparse.Namespace, runtime: Runtime) -> int:
    from . import stackcmds  # (with the kept stack's machinery: not for `config`)

    return stackcmds.logs(
        runtime.record_path,
        args.service,
        follow=args.follow,
        lines=args.lines,
        say=_say(runtime),
        note=_say(runtime, err=True),
    )


def cmd_restart(args: argparse.Namespace, runtime: Runtime) -> int:
    from . import stackcmds
    from .restart import restart

    path = runtime.record_path
    return restart(
        path,
        stackcmds.load(path),
        args.services,
        no_deps=args.no_deps,
        timeout=args.timeout,
        hook=runtime.hook,
        say=_say(runtime),
    )


def _loaded(runtime: Runtime) -> Runtime:
    """The runtime of a command that reads the compose file (down, status, logs do not)."""
    if runtime.error is not None:
        raise runtime.error
    if runtime.stack is None:
        from ...model.project import DEFAULT_NAMES

        raise PyAirtableError(
            f"no compose file in {runtime.compose_file.parent} (none of "
            f"{', '.join(DEFAULT_NAMES)}, and COMPOSE_FILE is unset). Fix: pass -f FILE "
            "(the command does not read pytest's ini file)."
        )
    for warning in (*runtime.stack.warnings, *runtime.stack.secret_notes()):
        _say(runtime, err=True)(f"pyairtable: warning: {warning}")
    return runtime


def _runtime(args: argparse.Namespace) -> Runtime:
    options = {**given(args), "keep": args.command == "up" and args.detach}
    settings = resolve(lambda s: options.get(s.name), lambda s: None, os.environ)
    cwd = Path.cwd()
    runtime = runtime_for(settings, cwd, cwd, walk_up=True)
    runtime.alert = _say(runtime, err=True)
    return runtime  # from a subdirectory too


def cmd_up(args: argparse.Namespace, runtime: Runtime) -> int:
    from ...session.devstack import select, up

    stack = _loaded(runtime).stack
    assert stack is not None
    runtime.say = say
    if progress.wanted(sys.stdout):
        display = progress.TtyProgress(sys.stdout)
        runtime.progress = display

        def say_over_progress(line: str) -> None:
            display.clear()
            print(line, flush=True)

        runtime.say = say_over_progress
    out = _say(runtime)
    out(
        f"pyairtable: {runtime.compose_file}: {len(stack.services)} services, "
        f"backend {runtime.settings.backend}"
    )
    env_file = runtime.settings.env_file or runtime.compose_file.parent / ".env"
    if not Path(env_file).is_file():
        out(f"pyairtable: note: no {env_file}; variables come from the environment only")
    select(runtime, args.services)
    return up(runtime)


def cmd_wait(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    # Imported here: the probes' HTTP and SQL clients cost every other command ~45 ms
    # of its start-up (the CLI is run in loops, by scripts and our tests).
    from ...probes.waitcmd import check_url, describe, wait_for, wait_options

    options = wait_options(args.timeout, args.interval, environ)
    for url in args.urls:  # every URL checked before the first wait
        check_url(url)
    redact = Redactor(secret_values(environ))
    failed = 0
    for url in args.urls:
        result = wait_for(
            url,
            timeout=options.timeout,
            interval=options.interval,
            max_retries=options.max_retries,
            tables=args.table,
            migrations_table=args.migrations_table,
        )
        print(describe(result, redact), file=sys.stdout if result.ok else sys.stderr)
        failed += not result.ok
    return 1 if failed else 0


def cmd_graph(args: argparse.Namespace, runtime: Runtime) -> int:
    edges = _loaded(runtime).topology()
    _say(runtime)("\n".join(render_dot(edges) if args.dot else render_tiers(edges)))
    return 0


def cmd_config(args: argparse.Namespace, runtime: Runtime) -> int:
    from ...model.render import dump, render_config

    stack = _loaded(runtime).stack
    assert stack is not None
    if runtime.ports is not None and runtime.ports.source == "chosen" and runtime.ports.chosen:
        _say(runtime, err=True)(
            f"pyairtable: free ports chosen for this output only: {runtime.ports.describe()}"
        )
    # masked inside the data (render_config): the text is printed as it is, and parses
    print(dump(render_config(stack, show_secrets=args.show_secrets), args.format), flush=True)
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
