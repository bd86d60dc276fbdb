"""The `pyairtable` command's global options (-f, --env-file, --profile, --backend,
--free-ports, --inherit-env), generated from the settings table (session/settings.py)
as the pytest options are: the settings that have a ``cli`` flag. As in compose, they may
come before the command or after it: both places count, lists are joined."""

from __future__ import annotations

import argparse
from typing import Any

from ...backends import BACKENDS
from ...session.settings import SETTINGS, Setting

GLOBAL = tuple(s for s in SETTINGS if s.cli)


def global_options(
    parser: argparse.ArgumentParser, *, late: bool = False, short_f: bool = True
) -> None:
    """The options of every command; ``late``: as given after the command's name (where
    ``-f`` may be the command's own, as `logs -f`: follow)."""
    for setting in GLOBAL:
        flags = [f for f in setting.cli if short_f or f != "-f"]
        parser.add_argument(*flags, **_argument(setting, late))


def _argument(setting: Setting, late: bool) -> dict[str, Any]:
    env = f" [env {setting.env}]" if setting.env else ""
    # After the command: a list goes beside the earlier one (merge_late joins them); any
    # other value, left unset there, replaces the earlier one.
    suffix = "_late" if late and setting.repeat else ""
    spec: dict[str, Any] = {"dest": setting.name + suffix, "help": setting.help + env}
    if setting.repeat:
        spec.update(action="append", metavar="NAME" if setting.name == "profile" else "FILE")
        spec["default"] = argparse.SUPPRESS if late else []
    elif setting.flag:
        spec.update(action="store_true", default=argparse.SUPPRESS if late else False)
    else:
        spec.update(default=argparse.SUPPRESS if late else None)
        if setting.name == "backend":
            spec["choices"] = list(BACKENDS)
        else:
            spec["metavar"] = "FILE"
    return spec


def merge_late(args: argparse.Namespace) -> argparse.Namespace:
    """The lists given after the command joined to those given before it."""
    for setting in GLOBAL:
        if setting.repeat:
            late = getattr(args, setting.name + "_late", [])
            setattr(args, setting.name, [*getattr(args, setting.name), *late])
    return args


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The global options as the settings' ``option`` callable reads them."""
    return {s.name: getattr(args, s.name) for s in GLOBAL}
