"""Every setting as a pytest option and ini key, generated from the one table of
settings (session/settings.py), and resolved once per run: option, env var, ini, default."""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Callable
from typing import Any

import pytest

from ...session.settings import SETTINGS, Settings, resolve
from ...support.errors import ConfigError


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyairtable", "PyAirtable stack (pytest-pyairtable)")
    for s in SETTINGS:
        env = f" [env {s.env}]" if s.env else ""
        if s.flag:
            group.addoption(s.option, action="store_true", default=False, help=s.help + env)
            # a string, parsed by the table: pytest 9.2's own "bool" parse fails before
            # any plugin can name the key in its error
            parser.addini(s.ini, s.help, default="")
        elif s.repeat:
            group.addoption(s.option, action="append", default=[], help=s.help + env)
            parser.addini(s.ini, s.help, type="args", default=[])
        elif s.const is not None:  # `--pyairtable-up` alone, or `--pyairtable-up=a,b`
            group.addoption(s.option, nargs="?", const=s.const, default=None, help=s.help + env)
            parser.addini(s.ini, s.help, default="")
        else:
            group.addoption(s.option, default=None, help=s.help + env)
            parser.addini(s.ini, s.help, default="")


def choose_rootdir_again(config: pytest.Config, args: list[str]) -> None:
    """``--pyairtable-compose-file ../x`` (a value after a space, as the docs write it)
    must choose the rootdir and ini file the ``=`` form chooses. pytest chose both before
    any plugin's options were known, so it read ``../x`` as a test path (pytest issue
    #8846); now that they are known, choose again from the real test paths, as pytest's
    own start does, and take the ini file found then (its addopts included). pytest has
    no public way to do this: its private attributes are set here, and nowhere else."""
    from _pytest.config.findpaths import determine_setup

    spaced = [s.option for s in SETTINGS if not s.flag and s.const is None]
    if not any(arg in spaced for arg in args[:-1]):
        return
    ns = config.known_args_namespace
    given: dict[str, Any] = {
        "inifile": ns.inifilename,
        "override_ini": ns.override_ini,  # pytest 8.1 on
        "args": ns.file_or_dir,
        "rootdir_cmd_arg": ns.rootdir or None,
        "invocation_dir": config.invocation_params.dir,
    }
    takes = inspect.signature(determine_setup).parameters
    found = determine_setup(**{k: v for k, v in given.items() if k in takes})
    rootpath, inipath, inicfg = found[:3]
    ignored = found[3] if len(found) > 3 else []  # the ini files it passed over (8.1 on)
    if (rootpath, inipath) == (config.rootpath, config.inipath):
        return
    old_cut = str(config.inipath.parent if config.inipath else config.rootpath)
    old_addopts = list(config.getini("addopts"))
    config._rootpath, config._inipath, config._inicfg = rootpath, inipath, inicfg  # private
    config._ignored_config_files = ignored
    config._inicache.clear()
    config._parser.extra_info.update(rootdir=str(rootpath), inifile=str(inipath))
    if ns.confcutdir == old_cut:  # pytest's default, from the rootdir and ini it chose
        ns.confcutdir = str(inipath.parent if inipath else rootpath)
    if old_addopts and args[: len(old_addopts)] == old_addopts:
        del args[: len(old_addopts)]
    args[:0] = list(config.getini("addopts"))
    config._configure_python_path()


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
