"""The pytest front end: options, one session fixture per service, reports, xdist wiring.

Fixtures are generated from the compose file at configure time, each requesting the
fixtures of its ``depends_on``, so pytest knows the closure every test needs. The
first fixture set up starts the closure of *all* collected tests at once (the
orchestrator runs it concurrently); fixtures only wait. Everything else is the
runtime's (runtime.py), which the `pyairtable` command drives too, and the stack
owner's (owner.py: leases, faults, resets). Longer than our other modules: it is the
whole pytest front end, and the only module that imports pytest.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import types
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

import pytest

from ...model.names import fixture_name
from ...session import hookspecs, report
from ...session.lease import EXCLUSIVE, SHARED
from ...session.owner import LocalAccess, StackOwner
from ...session.report import FirstReports, redact_report
from ...session.runtime import Runtime, runtime_for
from ...session.settings import SETTINGS, resolve
from ...support import plainimports  # noqa: F401 (plainimports installs itself)
from ...support.errors import ConfigError, InterpolationError, PyAirtableError
from ...support.signals import install_sigterm_handler, restore_sigterm_handler, shielded

if TYPE_CHECKING:
    from ...engine.faults import Faults
    from ...engine.orchestrator import Handle
    from ...session.sharing import StackClient, StackServer
    from ...state.reset import Reset

FIXTURES_PLUGIN = "pyairtable-fixtures"
__all__ = ["fixture_name"]  # a service's fixture name, where plugins and tests look for it


class Front:
    """What the pytest front end holds for one session (in ``config.stash``)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.reports = FirstReports()
        self.owner = StackOwner(runtime)  # used where this process owns the stack
        self.access: LocalAccess | StackClient = LocalAccess(self.owner)
        self.client: StackClient | None = None  # an xdist worker: the controller owns it
        self.server: StackServer | None = None  # the xdist controller
        self.nodeid = ""
        self.worker = ""  # xdist's worker id, for lease errors
        self.leased = False  # the current test holds a lease
        self.restored: list[str] | None = None  # what the current test's reset restored
        self.old_sigterm: Any = None

    def services(self, fixturenames: Iterable[str]) -> list[str]:
        wanted = set(fixturenames)
        return [n for n in self.runtime.topology() if fixture_name(n) in wanted]

    def handle(self, name: str) -> Handle:
        return self.access.handle(name, sorted(self.runtime.needed), self.nodeid)

    def stack_handles(self) -> dict[str, Handle]:
        if self.client is None:
            return self.owner.stack_handles()
        return {name: self.handle(name) for name in self.runtime.topology()}

    def lease(self, mode: str) -> None:
        """Hold the stack, ``mode`` at least, until the test's teardown."""
        self.access.lease(mode, f"{self.worker} {self.nodeid}".strip())
        self.leased = True

    def reset(self, names: list[str] | None, *, alone: bool) -> list[str]:
        """Restore services' data with the stack held alone; then share it again, unless
        the test holds it ``alone`` (it breaks things too)."""
        self.lease(EXCLUSIVE)
        try:
            self.restored = self.access.reset(names, sorted(self.runtime.needed))
            return self.restored
        finally:
            if not alone:
                self.access.lease("downgrade", "")

    def serve_workers(self) -> None:
        from ...session.sharing import StackServer

        self.server = StackServer(self.owner, self.reports.first, self.runtime.run_id)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.owner.closing = True  # a worker that goes away now is not healed
        if self.server is not None:
            self.server.close()  # no new requests; those in flight end with the stack
        with shielded():
            self.owner.stop()
        if self.server is not None:
            self.server.join()  # the run is over when pytest returns: no thread answers on


STASH = pytest.StashKey[Front]()


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
        elif s.const is not None:  # `--pyairtable-up` alone, or `--pyairtable-up=a,b`
            group.addoption(s.option, nargs="?", const=s.const, default=None, help=s.help + env)
            parser.addini(s.ini, s.help, default="")
        else:
            group.addoption(s.option, default=None, help=s.help + env)
            parser.addini(s.ini, s.help, default="")


def pytest_configure(config: pytest.Config) -> None:
    from ...backends import check_backend
    from ...state import safety

    ini_dir = config.inipath.parent if config.inipath else config.rootpath
    try:
        settings = resolve(
            lambda s: config.getoption("pyairtable_" + s.name),
            lambda s: config.getini(s.ini),
            os.environ,
        ).with_paths(ini_dir, config.invocation_params.dir)
        check_backend(settings["backend"])
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not config.pluginmanager.is_blocked(safety.PLUGIN_NAME):
        config.pluginmanager.register(safety, safety.PLUGIN_NAME)  # a built-in, as a plugin
    runtime = runtime_for(settings, config.rootpath, config.invocation_params.dir, config.hook)
    front = Front(runtime)
    config.stash[STASH] = front
    workerinput = getattr(config, "workerinput", {})
    config.addinivalue_line(
        "markers",
        "pyairtable_reset(*services): restore these services' data (default: every "
        "PostgreSQL and Redis service) to the snapshot taken at start-up, before the test",
    )
    if "pyairtable_socket" in workerinput:
        from ...session.sharing import StackClient

        front.client = StackClient(workerinput["pyairtable_socket"])
        front.access = front.client
        front.worker = str(workerinput.get("workerid", ""))
        if "pyairtable_ports" in workerinput:  # the owner chose them: the same values here
            from ...session.ports import PortHolds

            runtime.ports = PortHolds.given(json.loads(workerinput["pyairtable_ports"]))
    elif runtime.compose_file.is_file():  # this process may own a stack: from the main thread
        front.old_sigterm = install_sigterm_handler()
    if settings["debug"] or config.get_verbosity() > 0:
        runtime.say = _live_writer(config)
    if settings["up"] and runtime.error is not None:
        raise pytest.UsageError(str(runtime.error))
    if isinstance(settings["up"], tuple) and runtime.stack is not None:
        try:
            runtime.stack.require(settings["up"])
        except ConfigError as exc:
            raise pytest.UsageError(f"--pyairtable-up: {exc}") from None
    config.pluginmanager.register(_fixtures_module(front), FIXTURES_PLUGIN)
    if front.client is None:  # the stack's owner: its timeline marks when tests ran
        from ...session.runfiles import TestsRan

        config.pluginmanager.register(TestsRan(runtime), "pyairtable-tests-ran")


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


def _fixtures_module(front: Front) -> types.ModuleType:
    module = types.ModuleType("pytest_pyairtable._fixtures")
    topology = front.runtime.topology()
    for name, deps in topology.items():
        func = _service_fixture(name, [fixture_name(d) for d in deps])
        setattr(
            module,
            fixture_name(name),
            pytest.fixture(scope="session", name=fixture_name(name))(func),
        )
    stack = _stack_fixture([fixture_name(n) for n in topology])
    module.pyairtable_stack = pytest.fixture(scope="session", name="pyairtable_stack")(stack)  # type: ignore[attr-defined]
    return module


def _signature(names: list[str]) -> inspect.Signature:
    params = ["request", "_pyairtable_session", *names]
    return inspect.Signature([inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in params])


def _service_fixture(service: str, deps: list[str]) -> Any:
    def fixture(*, _pyairtable_session: Front, **_: Any) -> Any:
        return _pyairtable_session.handle(service)

    fixture.__name__ = fixture_name(service)
    fixture.__doc__ = f"Session fixture: the '{service}' service, ready, with its dependencies."
    fixture.__signature__ = _signature(deps)  # type: ignore[attr-defined]
    return fixture


def _stack_fixture(all_fixtures: list[str]) -> Any:
    def fixture(*, _pyairtable_session: Front, **handles: Any) -> Any:
        return _pyairtable_session.stack_handles()

    fixture.__doc__ = "Session fixture: every active service of the stack, ready."
    fixture.__signature__ = _signature(all_fixtures)  # type: ignore[attr-defined]
    return fixture


@pytest.fixture(scope="session")
def _pyairtable_session(request: pytest.FixtureRequest) -> Generator[Front, None, None]:
    """Owns the running stack: stops it, in reverse order, after the last test."""
    front = request.config.stash[STASH]
    if front.runtime.settings["backend"] == "compose":
        front.runtime.backend_options.update(_pytest_docker_settings(request))
    yield front
    front.stop()


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
def pyairtable_faults(_pyairtable_session: Front) -> Generator[Faults, None, None]:
    """Break a service during one test (stop, kill, pause, restart); after the test the
    stack is healed and healthy again before the next test starts. The test has the
    stack alone: under xdist, other workers' tests wait (see lease.py)."""
    from ...engine.faults import Faults

    front = _pyairtable_session
    front.lease(EXCLUSIVE)  # taken before the test already; from a test body, an upgrade
    front.access.fault("begin", "")
    yield Faults(front.access.fault)
    front.access.fault("heal", "")


@pytest.fixture
def pyairtable_reset(request: pytest.FixtureRequest, _pyairtable_session: Front) -> Reset:
    """The services' data restored before the test (all PostgreSQL and Redis services,
    or those its ``pyairtable_reset`` marker names); call it to restore again."""
    from ...state.reset import Reset

    front = _pyairtable_session
    alone = "pyairtable_faults" in request.fixturenames
    if front.restored is None:  # requested from the test body: not reset before it
        front.reset(None, alone=alone)
    return Reset(front.restored or (), lambda names: front.reset(names, alone=alone))


def _reset_request(item: pytest.Item) -> list[str] | None:
    """What a test asks to reset before it: None (nothing), [] (everything) or names."""
    marker = item.get_closest_marker("pyairtable_reset")
    if marker is not None:
        return [str(name) for name in marker.args]
    return [] if "pyairtable_reset" in getattr(item, "fixturenames", ()) else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Remember which services the collected tests need (the partial stack)."""
    front = config.stash[STASH]
    wanted = {f for item in items for f in getattr(item, "fixturenames", ())}
    topology = front.runtime.topology()
    everything = "pyairtable_stack" in wanted
    front.runtime.needed = set(topology) if everything else set(front.services(wanted))
    resets = [_reset_request(item) for item in items]
    named = {name for names in resets if names for name in names}
    front.access.resets = sorted(named | ({"*"} if [] in resets else set()))
    front.runtime.needed |= named & set(topology)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config) -> None:
    """The controller owns the stack, so it is booted once and torn down after the last
    worker; workers reach it through a socket named in their workerinput."""
    front = config.stash[STASH]
    if front.runtime.stack is not None and front.server is None:
        if front.runtime.settings["free_ports"]:
            front.runtime.attached()  # settles the ports: a kept stack's, or new ones
        front.serve_workers()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    front = node.config.stash[STASH]
    if front.server is not None:
        node.workerinput["pyairtable_socket"] = front.server.path
        node.workerinput["pyairtable_ports"] = json.dumps(front.runtime.chosen_ports)


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
    front = item.config.stash[STASH]
    front.nodeid = item.nodeid
    front.restored = None
    names = getattr(item, "fixturenames", ())
    runtime = front.runtime
    if runtime.loaded and runtime.error is not None:
        if any(n.startswith("pyairtable_") for n in names):
            raise runtime.error.fresh()  # ours, not pytest's "fixture not found"
        return
    absent = runtime.absent() if any(n.startswith("pyairtable_") for n in names) else None
    if absent is not None:
        raise absent  # no compose file: ours, not pytest's "fixture not found"
    reset = _reset_request(item)
    alone = "pyairtable_faults" in names
    if alone or reset is not None:
        front.lease(EXCLUSIVE)
    elif front.services(names) or "pyairtable_stack" in names:
        front.lease(SHARED)
    if reset is not None:
        front.reset(reset or None, alone=alone)
    front.runtime.check_alive(front.services(names))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After every fixture's teardown (a fault test's heal included): let others in."""
    try:
        return (yield)
    finally:
        front = item.config.stash[STASH]
        if front.leased:
            front.leased = False
            front.access.lease("none", "")


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> bool | None:
    return True if session.config.stash[STASH].runtime.settings["up"] else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    from ...session.devstack import select, up

    runtime = session.config.stash[STASH].runtime
    wanted = runtime.settings["up"]
    if not wanted:
        return None
    writer = session.config.get_terminal_writer()
    runtime.say = writer.line
    try:
        select(runtime, () if wanted is True else wanted)
        if up(runtime):
            session.testsfailed = 1
    except PyAirtableError as exc:
        writer.line(runtime.redact(str(exc)), red=True)
        session.testsfailed = 1
    return True


@pytest.hookimpl(tryfirst=True)  # before xdist's, which waits for the workers to end
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    front = session.config.stash[STASH]
    if exitstatus == pytest.ExitCode.INTERRUPTED and front.server is not None:
        front.server.interrupt()
    runtime = front.runtime
    if runtime.settings["up"] and not session.testsfailed:
        session.exitstatus = pytest.ExitCode.OK


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report_ = yield
    front = item.config.stash[STASH]
    error = call.excinfo.value if call.excinfo else None
    if report_.when == "setup" and isinstance(error, PyAirtableError):
        first = front.reports.first(error, item.nodeid)
        text, head = str(error), error.headline()
        if first != item.nodeid:
            text = head = f"{head} (reported in full at {first})"
        # duck-types pytest's internal TerminalRepr: toterminal() and reprcrash.message
        report_.longrepr = FailureRepr(f"[pyairtable] {text}", f"[pyairtable] {head}")  # type: ignore[assignment]
    redact_report(report_, front.runtime.redact, FailureRepr)
    return report_


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """xdist sends a worker's report as text; give it back its one-line summary, and
    redact it again here: a worker never reads the stack, so it knows only the patterns
    and the environment's secrets, and the controller writes the terminal and junit."""
    text = report.longrepr
    if isinstance(text, str) and text.startswith("[pyairtable] "):
        report.longrepr = FailureRepr(text, text.splitlines()[0])  # type: ignore[assignment]
    if getattr(report, "node", None) is not None:  # from a worker
        config = report.node.config
        redact_report(report, config.stash[STASH].runtime.redact, FailureRepr)


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
    runtime = config.stash[STASH].runtime
    return [runtime.redact(line) for line in report.header(runtime)]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    runtime = terminalreporter.config.stash[STASH].runtime
    lines = report.summary(runtime)
    if lines:
        terminalreporter.write_sep("-", "pyairtable")
        for line in lines:
            terminalreporter.write_line(runtime.redact(line))


def pytest_unconfigure(config: pytest.Config) -> None:
    front = config.stash.get(STASH, None)
    if front is not None:
        front.stop()  # after Ctrl-C pytest runs no fixture teardown, but it does run this
        restore_sigterm_handler(front.old_sigterm)
