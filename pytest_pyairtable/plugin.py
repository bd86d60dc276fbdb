"""The pytest front end: options, one session fixture per service, reports, ``--pyairtable-up``.

Fixtures are generated from the compose file at configure time, each requesting the
fixtures of its ``depends_on``, so pytest knows the closure every test needs. The
first fixture set up starts the closure of *all* collected tests at once (the
orchestrator runs it concurrently); fixtures only wait.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import types
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

from . import hookspecs
from .errors import ConfigError, PyAirtableError
from .session import StackSession, load_for_config
from .settings import SETTINGS, resolve

if TYPE_CHECKING:
    from .engine.faults import Faults

STASH = pytest.StashKey[StackSession]()
FIXTURES_PLUGIN = "pyairtable-fixtures"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


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
        else:
            group.addoption(s.option, default=None, help=s.help + env)
            parser.addini(s.ini, s.help, default="")


def pytest_configure(config: pytest.Config) -> None:
    try:
        settings = resolve(
            lambda s: config.getoption("pyairtable_" + s.name),
            lambda s: config.getini(s.ini),
            os.environ,
        )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    session = load_for_config(settings, config.rootpath, config.invocation_params.dir, config.hook)
    config.stash[STASH] = session
    workerinput = getattr(config, "workerinput", {})
    if "pyairtable_socket" in workerinput:
        session.attach(workerinput["pyairtable_socket"])
    if settings["debug"] or config.get_verbosity() > 0:
        session.say = _live_writer(config)
    if settings["up"] and session.error is not None:
        raise pytest.UsageError(str(session.error))
    config.pluginmanager.register(_fixtures_module(session), FIXTURES_PLUGIN)


def _live_writer(config: pytest.Config) -> Callable[[str], None]:
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


def _fixtures_module(session: StackSession) -> types.ModuleType:
    module = types.ModuleType("pytest_pyairtable._fixtures")
    for name, deps in session.topology().items():
        fixture_name = session.fixture_name(name)
        func = _service_fixture(name, [session.fixture_name(d) for d in deps])
        setattr(module, fixture_name, pytest.fixture(scope="session", name=fixture_name)(func))
    stack = _stack_fixture([session.fixture_name(n) for n in session.topology()])
    module.pyairtable_stack = pytest.fixture(scope="session", name="pyairtable_stack")(stack)  # type: ignore[attr-defined]
    return module


def _signature(names: list[str]) -> inspect.Signature:
    params = ["request", "_pyairtable_session", *names]
    return inspect.Signature([inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in params])


def _service_fixture(service: str, deps: list[str]) -> Any:
    def fixture(*, _pyairtable_session: StackSession, **_: Any) -> Any:
        return _pyairtable_session.handle(service)

    fixture.__name__ = "pyairtable_" + service
    fixture.__doc__ = f"Session fixture: the '{service}' service, ready, with its dependencies."
    fixture.__signature__ = _signature(deps)  # type: ignore[attr-defined]
    return fixture


def _stack_fixture(all_fixtures: list[str]) -> Any:
    def fixture(*, _pyairtable_session: StackSession, **handles: Any) -> Any:
        return _pyairtable_session.stack_handles()

    fixture.__doc__ = "Session fixture: every active service of the stack, ready."
    fixture.__signature__ = _signature(all_fixtures)  # type: ignore[attr-defined]
    return fixture


@pytest.fixture(scope="session")
def _pyairtable_session(request: pytest.FixtureRequest) -> Generator[StackSession, None, None]:
    """Owns the running stack: stops it, in reverse order, after the last test."""
    session = request.config.stash[STASH]
    if session.settings["backend"] == "compose":
        session.backend_options.update(_pytest_docker_settings(request))
    yield session
    session.stop()


# pytest-docker's overridable fixtures and their defaults: a suite that overrides one keeps
# its setting with our compose backend. (Its default project name is the PID, which
# gives each xdist worker its own stack: that one default we do not follow.)
_PYTEST_DOCKER = {
    "docker_compose_command": ("compose_command", "docker compose"),
    "docker_compose_project_name": ("project_name", f"pytest{os.getpid()}"),
    "docker_cleanup": ("cleanup", ["down -v"]),
}


def _pytest_docker_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    if not request.config.pluginmanager.hasplugin("docker"):
        return {}
    options: dict[str, Any] = {}
    for fixture, (option, default) in _PYTEST_DOCKER.items():
        try:
            value = request.getfixturevalue(fixture)
        except pytest.FixtureLookupError:
            continue
        if value != default and value:
            options[option] = [value] if option == "cleanup" and isinstance(value, str) else value
    return options


@pytest.fixture
def pyairtable_faults(_pyairtable_session: StackSession) -> Generator[Faults, None, None]:
    """Break a service during one test (stop, kill, pause, restart); after the test the
    stack is healed and healthy again before the next test starts."""
    faults = _pyairtable_session.faults()
    yield faults
    faults.heal()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    session = config.stash[STASH]
    wanted = {f for item in items for f in getattr(item, "fixturenames", ())}
    session.select(wanted)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config) -> None:
    """The controller owns the stack, so it is booted once and torn down after the last
    worker; workers reach it through a socket named in their workerinput."""
    session = config.stash[STASH]
    if session.stack is not None and session.server is None:
        session.serve_workers()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    session = node.config.stash[STASH]
    if session.server is not None:
        node.workerinput["pyairtable_socket"] = session.server.path


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    session = item.config.stash[STASH]
    session.current_nodeid = item.nodeid
    session.check_alive(getattr(item, "fixturenames", ()))


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> bool | None:
    return True if session.config.stash[STASH].settings["up"] else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    stack = session.config.stash[STASH]
    if not stack.settings["up"]:
        return None
    writer = session.config.get_terminal_writer()
    stack.say = writer.line
    try:
        stack.up_until_interrupted()
    except PyAirtableError as exc:
        writer.line(str(exc), red=True)
        session.testsfailed = 1
    return True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stack = session.config.stash[STASH]
    if stack.settings["up"] and not session.testsfailed:
        session.exitstatus = pytest.ExitCode.OK


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    error = call.excinfo.value if call.excinfo else None
    if report.when == "setup" and isinstance(error, PyAirtableError):
        first = item.config.stash[STASH].first_report(error, item.nodeid)
        text, head = str(error), error.headline()
        if first != item.nodeid:
            text = head = f"{head} (reported in full at {first})"
        # duck-types pytest's internal TerminalRepr: toterminal() and reprcrash.message
        report.longrepr = FailureRepr(f"[pyairtable] {text}", f"[pyairtable] {head}")  # type: ignore[assignment]
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """xdist sends a worker's report as text; give it back its one-line summary."""
    text = report.longrepr
    if isinstance(text, str) and text.startswith("[pyairtable] "):
        report.longrepr = FailureRepr(text, text.splitlines()[0])  # type: ignore[assignment]


class FailureRepr:
    """A failure's full text for its section, and only its headline for the short test
    summary (which pytest prints whole under CI: the text would appear twice)."""

    def __init__(self, text: str, headline: str) -> None:
        self.text = text
        self.reprcrash = types.SimpleNamespace(message=headline)

    def toterminal(self, out: Any) -> None:
        for line in self.text.splitlines():
            out.line(line)

    def __str__(self) -> str:
        return self.text


def pytest_report_header(config: pytest.Config) -> list[str]:
    return config.stash[STASH].header()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = terminalreporter.config.stash[STASH].summary()
    if lines:
        terminalreporter.write_sep("-", "pyairtable")
        for line in lines:
            terminalreporter.write_line(line)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(STASH, None)
    if session is not None:
        session.stop()  # after Ctrl-C pytest runs no fixture teardown, but it does run this
