"""The `pyairtable` command's global options (-f, --env-file, --profile, --backend,
--free-ports, --inherit-env), which may come before the command or, as in compose,
after it: both places count, lists are joined."""

from __future__ import annotations

import argparse
from typing import Any

from ...backends import BACKENDS

_LISTS = ("compose_file", "profile")  # given before and after the command: both count


def global_options(
    parser: argparse.ArgumentParser, *, late: bool = False, short_f: bool = True
) -> None:
    """The options of every command; ``late``: as given after the command's name (where
    ``-f`` may be the command's own, as `logs -f`: follow)."""
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if late else {}
    suffix = "_late" if late else ""
    parser.add_argument(
        *(["-f"] if short_f else []),
        "--compose-file",
        action="append",
        dest="compose_file" + suffix,
        metavar="FILE",
        **(unset or {"default": []}),
        help="compose file, repeatable to merge several (default: COMPOSE_FILE, else "
        "compose.yaml / docker-compose.yml and its override file, in this directory)",
    )
    parser.add_argument(
        "--env-file",
        **unset,
        metavar="FILE",
        help="env file (default: .env beside the compose file)",
    )
    parser.add_argument(
        "--profile",
        action="append",
        dest="profile" + suffix,
        metavar="NAME",
        **(unset or {"default": []}),
        help="activate a profile (repeatable) [env COMPOSE_PROFILES]",
    )
    parser.add_argument(
        "--backend",
        choices=list(BACKENDS),
        **unset,
        help="how services run: local (processes, the default), compose (containers on a "
        "Docker engine, needs the [docker] extra), external (already running: probe only)",
    )
    parser.add_argument(
        "--free-ports",
        action="store_true",
        **unset,
        help="free host ports for ports taken from a variable with a default "
        "[env PYAIRTABLE_FREE_PORTS=1]",
    )
    parser.add_argument(
        "--inherit-env",
        action="store_true",
        **unset,
        help="local services get this shell's whole environment [env PYAIRTABLE_INHERIT_ENV=1]",
    )


def merge_late(args: argparse.Namespace) -> argparse.Namespace:
    """The options given after the command joined to those given before it."""
    for name in _LISTS:
        setattr(args, name, [*getattr(args, name), *getattr(args, name + "_late", [])])
    return args
