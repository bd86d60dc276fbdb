"""The role a pytest process plays, one object each, registered as a plugin in
``pytest_configure`` (as pytest-xdist registers ``DSession`` or ``WorkerInteractor``):

- ``Controller``: the process that owns the stack: a run without xdist, or xdist's
  controller, which serves the workers over a socket (session/sharing.py) and tears the
  stack down once, after the last of them;
- ``Worker``: an xdist worker, which reaches the controller's stack through that socket.

Both give fixtures and per-test hooks the same calls (handle, lease, reset, fault) through
``access``; a hook only one role needs is a method of that role, so no hook asks which role
it runs in.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from collections.abc import Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from ...model.names import fixture_name
from ...session import report
from ...session.isolation import SLOT_VAR
from ...session.lease import EXCLUSIVE
from ...session.owner import LocalAccess, StackOwner
from ...session.testlogs import TestLogs
from ...support.errors import PyAirtableError
from ...support.signals import install_sigterm_handler, restore_sigterm_handler, shielded
from .masking import mask_warning
from .reports import FailureRepr, FirstReports, JunitSections, redact_report

if TYPE_CHECKING:
    from ...engine.handle import Handle
    from ...session.runtime import Runtime
    from ...session.sharing import StackClient, StackServer


class Role:
    """What fixtures and the per-test hooks use, whichever process owns the stack."""

    def __init__(self, runtime: Runtime, access: LocalAccess | StackClient) -> None:
        self.runtime = runtime
        self.access = access
        self.reports = FirstReports()
        self.nodeid = ""
        self.worker = ""  # xdist's worker id, for lease errors
        self.leased = False  # the current test holds a lease
        self.restored: list[str] | None = None  # what the current test's reset restored
        settings = runtime.settings
        self.logs = TestLogs(settings.test_logs, settings.test_log_lines)

    def services(self, fixturenames: Iterable[str]) -> list[str]:
        wanted = set(fixturenames)
        return [n for n in self.runtime.topology() if fixture_name(n) in wanted]

    def handle(self, name: str) -> Handle:
        handle = self.access.handle(name, sorted(self.runtime.needed), self.nodeid)
        self.logs.seen(name, handle.log_path)
        return handle

    def stack_handles(self) -> dict[str, Handle]:
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

    def check_alive(self, names: Iterable[str]) -> None:
        """Before a test: a service it needs that died mid-session fails it (the owner's)."""

    # -- reports -----------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report_ = yield
        error = call.excinfo.value if call.excinfo else None
        # set-up (a service a test needs) and teardown (a fault test's heal): reported
        # in full by the first test, the others point at it
        if report_.when in ("setup", "teardown") and isinstance(error, PyAirtableError):
            first = self.reports.first(error, item.nodeid)
            text, head = str(error), error.headline()
            if first != item.nodeid:
                text = head = f"{head} (reported in full at {first})"
            # duck-types pytest's internal TerminalRepr: toterminal() and reprcrash.message
            report_.longrepr = FailureRepr(f"[pyairtable] {text}", f"[pyairtable] {head}")  # type: ignore[assignment]
        if self.logs.wanted(report_.when, report_.outcome):
            # a failure's evidence is whole: all its services wrote until it ended
            moment = call.stop if report_.outcome == "failed" else None
            report_.sections += self.test_log_sections(moment)
        if report_.sections or report_.longrepr is not None:  # the stack's secrets too
            redact_report(report_, self.runtime.redact_all(), FailureRepr)
        return report_

    def test_log_sections(self, moment: float | None = None) -> list[tuple[str, str]]:
        """What the current test's services logged while it ran, a section each."""
        try:
            return self.logs.sections(self.access.test_logs, self.runtime.topology(), moment)
        except Exception as exc:  # the evidence must not cost the report
            return [("pyairtable: test logs", f"not read: {exc}")]

    @pytest.hookimpl(tryfirst=True)  # before the terminal formats it for its summary
    def pytest_warning_recorded(self, warning_message: warnings.WarningMessage) -> None:
        mask_warning(warning_message, self.runtime.redact_all())

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        return [self.runtime.redact(line) for line in report.header(self.runtime)]

    def summary(self, *, verbose: bool = False) -> list[str]:
        return report.summary(self.runtime, verbose=verbose)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        verbose = terminalreporter.config.get_verbosity() > 0
        lines = self.summary(verbose=verbose)
        if lines:
            terminalreporter.write_sep("-", "pyairtable")
            for line in lines:
                terminalreporter.write_line(self.runtime.redact(line))

    def stop(self) -> None:
        """The end of the session (also after Ctrl-C: pytest_unconfigure still runs)."""

    def configure(self, config: pytest.Config) -> None:
        """pytest_configure, once the role is registered."""

    def unconfigure(self) -> None:
        """pytest is done: stop (if the session fixture did not), give back what was set."""
        self.stop()


class Controller(Role):
    """The process that owns the stack: boots it, serves xdist's workers, stops or keeps it."""

    def __init__(self, runtime: Runtime) -> None:
        self.owner = StackOwner(runtime)
        super().__init__(runtime, LocalAccess(self.owner))
        self.server: StackServer | None = None
        self.old_sigterm: Any = None
        self._finishing = Finishing(runtime)

    def configure(self, config: pytest.Config) -> None:
        from .measured import measure_services

        # SIGTERM (a CI cancel) stops the stack as Ctrl-C does, where one may run; from
        # the main thread, as pytest_configure is
        if self.runtime.compose_file.is_file():
            self.old_sigterm = install_sigterm_handler()
            measure_services(config, self.runtime, self.stop)
            config.pluginmanager.register(self._finishing, "pyairtable-finishing")
        if self.runtime.settings.test_logs != "never":  # this process writes junit XML
            config.pluginmanager.register(JunitSections(config, self.runtime.redact_all))

    def stack_handles(self) -> dict[str, Handle]:
        return self.owner.stack_handles()

    def summary(self, *, verbose: bool = False) -> list[str]:
        """The run's summary, with what the xdist workers' own databases were (the
        workers are done by now; the copies are dropped when the stack stops)."""
        return self.owner.isolation.summary() + super().summary(verbose=verbose)

    def check_alive(self, names: Iterable[str]) -> None:
        self.runtime.check_alive(names)

    def stop(self) -> None:
        self.owner.closing = True  # a worker that goes away now is not healed
        if self.server is not None:
            self.server.close()  # no new requests; those in flight end with the stack
        with shielded(self.runtime.hurry):
            self.owner.stop()
        if self.server is not None:
            self.server.join()  # the run is over when pytest returns: no thread answers on

    def unconfigure(self) -> None:
        self.stop()
        self._finishing.shield.close()
        restore_sigterm_handler(self.old_sigterm)

    # -- xdist: one stack for every worker ----------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: list[Any]) -> None:
        """Booted once, torn down after the last worker: workers reach it through a
        socket named in their workerinput. Each worker's own databases are named now,
        in the environment its process starts with (execnet sets a spec's ``env``
        before xdist runs anything there); a replacement for a worker that died reuses
        its spec, so its name and environment too."""
        if self.runtime.stack is not None and self.server is None:
            if self.runtime.settings.free_ports:
                self.runtime.attached()  # settles the ports: a kept stack's, or new ones
            self.serve_workers()
            environs = self.owner.isolation.prepare([str(s.id) for s in specs], os.environ)
            for spec in specs:
                spec.env.update(environs.get(str(spec.id), {}))

    def serve_workers(self) -> None:
        from ...session.sharing import StackServer

        self.server = StackServer(self.owner, self.reports.first, self.runtime.run_id)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.server is not None:
            node.workerinput["pyairtable_socket"] = self.server.path
            node.workerinput["pyairtable_ports"] = json.dumps(self.runtime.chosen_ports)
            env = getattr(node.gateway.spec, "env", {})
            node.workerinput["pyairtable_slot"] = env.get(SLOT_VAR, "")

    @pytest.hookimpl(tryfirst=True)  # masked before junit writes it
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """When tests ran, for the timeline; and a worker's report masked again here: a
        worker never reads the stack, so it knows only the patterns and the environment's
        secrets, and this process writes the terminal and junit."""
        if report.when == "call":
            self.runtime.files.note_test(self.runtime.orch, report.start, report.stop)
        if getattr(report, "node", None) is not None:  # from a worker
            redact_report(report, self.runtime.redact_all(), FailureRepr)

    @pytest.hookimpl(tryfirst=True)  # before xdist's, which waits for the workers to end
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus == pytest.ExitCode.INTERRUPTED and self.server is not None:
            self.server.interrupt()
        if self.runtime.settings.up and not session.testsfailed:
            session.exitstatus = pytest.ExitCode.OK  # no tests ran, on purpose

    # -- --pyairtable-up: a dev stack instead of tests ---------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool | None:
        return True if self.runtime.settings.up else None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        from ...session.devstack import select, up
        from ...support.errors import PyAirtableError

        wanted = self.runtime.settings.up
        if not wanted:
            return None
        writer = session.config.get_terminal_writer()
        self.runtime.say = writer.line
        try:
            select(self.runtime, wanted if isinstance(wanted, tuple) else ())
            if up(self.runtime):
                session.testsfailed = 1
        except PyAirtableError as exc:
            writer.line(self.runtime.redact(str(exc)), red=True)
            session.testsfailed = 1
        return True


class Worker(Role):
    """An xdist worker: the controller owns the stack; this process asks it."""

    def __init__(self, runtime: Runtime, workerinput: Mapping[str, Any]) -> None:
        from ...session.sharing import StackClient

        self.client = StackClient(
            workerinput["pyairtable_socket"], str(workerinput.get("pyairtable_slot", ""))
        )
        super().__init__(runtime, self.client)
        self.worker = str(workerinput.get("workerid", ""))
        if "pyairtable_ports" in workerinput:  # the owner chose them: the same values here
            from ...session.ports import PortHolds

            runtime.ports = PortHolds.given(json.loads(workerinput["pyairtable_ports"]))

    def stop(self) -> None:
        self.client.close()


class Finishing:
    """From pytest's summary to the end of the run, a Ctrl-C or SIGTERM no longer breaks
    the run's last lines with a traceback: it is held off, and hurries a stop under way
    (a plugin of its own: its summary hook wraps pytest's, the role's is inside it)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.shield = contextlib.ExitStack()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_terminal_summary(self) -> Generator[None, None, None]:
        if threading.current_thread() is threading.main_thread():
            self.shield.enter_context(shielded(self.runtime.hurry))
        return (yield)


def role_for(runtime: Runtime, config: pytest.Config) -> Role:
    workerinput = getattr(config, "workerinput", {})
    if "pyairtable_socket" in workerinput:
        return Worker(runtime, workerinput)
    return Controller(runtime)


STASH = pytest.StashKey[Role]()
