"""The plugin's part in pytest's run: configure (settings, runtime, role, fixtures),
collection (which services the selected tests need), each test's lease and reset, and
the end. Everything about the stack itself is the runtime's (session/runtime.py), which
the `pyairtable` command drives too, and the stack owner's (session/owner.py)."""

from __future__ import annotations

from collections.abc import Generator, Iterable

import pytest

from ...session import hookspecs
from ...session.lease import EXCLUSIVE, SHARED
from ...session.runtime import runtime_for
from ...support.errors import ConfigError, InterpolationError
from .fixtures import FIXTURES_PLUGIN, services_module
from .options import choose_rootdir_again, live_writer, settings_of
from .roles import STASH, role_for

ROLE_PLUGIN = "pyairtable-role"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    choose_rootdir_again(early_config, args)


def pytest_configure(config: pytest.Config) -> None:
    from ...state import safety

    settings = settings_of(config)
    if settings.up and getattr(config.option, "dist", "no") != "no":
        # A dev stack runs no tests: xdist's workers (`-n auto` in a repo's addopts) would
        # only start and collect the whole suite, each on the CPUs the stack boots on.
        # (xdist starts them from its own pytest_configure, which comes after this one.)
        config.option.dist = "no"
        config.option.numprocesses = 0
    if not config.pluginmanager.is_blocked(safety.PLUGIN_NAME):
        config.pluginmanager.register(safety, safety.PLUGIN_NAME)  # a built-in, as a plugin
    runtime = runtime_for(settings, config.rootpath, config.invocation_params.dir, config.hook)
    role = role_for(runtime, config)
    config.stash[STASH] = role
    config.addinivalue_line(
        "markers",
        "pyairtable_reset(*services): restore these services' data (default: every "
        "PostgreSQL and Redis service) to the snapshot taken at start-up, before the test",
    )
    shout = live_writer(config)
    runtime.alert = lambda line: shout(runtime.redact(line))  # past capture, any verbosity
    if settings.debug or config.get_verbosity() > 0:
        runtime.say = shout
    if (settings.up or settings.local) and runtime.error is not None:
        raise pytest.UsageError(str(runtime.error))  # asked for the stack: a bad one is ours
    if isinstance(settings.up, tuple) and runtime.stack is not None:
        from ...support.errors import ConfigError

        try:
            runtime.stack.require(settings.up)
        except ConfigError as exc:
            raise pytest.UsageError(f"--pyairtable-up: {exc}") from None
    config.pluginmanager.register(services_module(role), FIXTURES_PLUGIN)
    config.pluginmanager.register(role, ROLE_PLUGIN)
    role.configure(config)


def _reset_request(item: pytest.Item) -> list[str] | None:
    """What a test asks to reset before it: None (nothing), [] (everything) or names."""
    marker = item.get_closest_marker("pyairtable_reset")
    if marker is not None:
        return [str(name) for name in marker.args]
    return [] if "pyairtable_reset" in getattr(item, "fixturenames", ()) else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Remember which services the collected tests need (the partial stack)."""
    role = config.stash[STASH]
    wanted = {f for item in items for f in getattr(item, "fixturenames", ())}
    topology = role.runtime.topology()
    everything = "pyairtable_stack" in wanted
    role.runtime.needed = set(topology) if everything else set(role.services(wanted))
    resets = [_reset_request(item) for item in items]
    named = {name for names in resets if names for name in names}
    role.access.resets = sorted(named | ({"*"} if [] in resets else set()))
    role.runtime.needed |= named & set(topology)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """A compose file that cannot be read fails the run here, with its own message:
    its services have no fixtures, and pytest would only say "fixture not found".
    (A missing variable is left to the tests that need the stack, as documented.)"""
    runtime = session.config.stash[STASH].runtime
    error = runtime.error if runtime.loaded else None
    if error is not None and not isinstance(error, InterpolationError):
        raise pytest.UsageError(
            runtime.redact(
                f"pyairtable: the stack cannot be read:\n{error}\n(To run only tests that "
                "need no service meanwhile: -p no:pyairtable.)"
            )
        )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture: the test's lease on the stack (exclusive for faults and
    resets, shared for any other use), and its reset."""
    role = item.config.stash[STASH]
    role.nodeid = item.nodeid
    role.restored = None
    names = getattr(item, "fixturenames", ())
    services = role.services(names)
    role.logs.begin(())  # no evidence of the last test's
    runtime = role.runtime
    if runtime.loaded and runtime.error is not None:
        if any(n.startswith("pyairtable_") for n in names):
            raise runtime.error.fresh()  # ours, not pytest's "fixture not found"
        return
    if not runtime.compose_file.is_file():
        missing = _undefined_service_fixtures(item, names)
        if missing:  # ours, not pytest's "fixture 'pyairtable_x' not found"
            raise ConfigError(f"the test requests {', '.join(missing)}, but there is "
                              f"{runtime.no_compose_file()}")  # fmt: skip
    reset = _reset_request(item)
    alone = "pyairtable_faults" in names
    if alone or reset is not None:
        role.lease(EXCLUSIVE)
    elif services or "pyairtable_stack" in names:
        role.lease(SHARED)
    role.logs.begin(services)  # the test's window opens once it holds the stack
    if reset is not None:
        role.reset(reset or None, alone=alone)
    role.check_alive(services)


def _undefined_service_fixtures(item: pytest.Item, names: Iterable[str]) -> list[str]:
    """The ``pyairtable_*`` fixtures the test asks for that nothing defines."""
    info = getattr(item, "_fixtureinfo", None)
    defined = getattr(info, "name2fixturedefs", {})
    return [n for n in names if n.startswith("pyairtable_") and not defined.get(n)]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After every fixture's teardown (a fault test's heal included): let others in."""
    try:
        return (yield)
    finally:
        role = item.config.stash[STASH]
        if role.leased:
            role.leased = False
            role.access.lease("none", "")


def pytest_unconfigure(config: pytest.Config) -> None:
    role = config.stash.get(STASH, None)
    if role is not None:
        role.unconfigure()  # after Ctrl-C pytest runs no fixture teardown, but it does run this
