"""Every setting as a pytest option and ini key, generated from the one table of
settings (session/settings.py), and resolved once per run: option, env var, ini, default."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import pytest

from ...session.settings import SETTINGS, Settings, resolve
from ...support.errors import ConfigError


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyairtable", "PyAirtable stack (pytest-pyairtable)")
    for s in SETTINGS:
        env = f" [env {s.env}]" if s.env else ""
        if s.flag:
            group.addoption(s.option, action="store_true", default=False, help=s.help + env)
            parser.addini(s.ini, s.help, type="bool", default=False)
        elif s.repeat:
            group.addoption(s.option, action="append", default=[], help=s.help + env)
            parser.addini(s.ini, s.help, type="args", default=[])
        elif s.const is not None:  # `--pyairtable-up` alone, or `--pyairtable-up=a,b`
            group.addoption(s.option, nargs="?", const=s.const, default=None, help=s.help + env)
            parser.addini(s.ini, s.help, default="")
        else:
            group.addoption(s.option, default=None, help=s.help + env)
            parser.addini(s.ini, s.help, default="")


def settings_of(config: pytest.Config) -> Settings:
    """The run's settings; a usage error names the setting, its source and the fix."""
    from ...backends import check_backend

    ini_dir = config.inipath.parent if config.inipath else config.rootpath
    try:
        settings = resolve(
            lambda s: config.getoption("pyairtable_" + s.name),
            lambda s: config.getini(s.ini),
            os.environ,
        ).with_paths(ini_dir, config.invocation_params.dir)
        check_backend(settings.backend)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    return settings


def live_writer(config: pytest.Config) -> Callable[[str], None]:
    """Progress lines, printed past output capture; only ever called from the main thread."""

    def say(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            reporter.ensure_newline()
            reporter.write_line(line)

    return say
