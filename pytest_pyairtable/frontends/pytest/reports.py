"""Test reports as the stack shapes them: a stack failure is reported in full once (by
the first test it failed), its secrets masked in every channel (terminal, junit XML,
what xdist forwards). The roles' hooks (roles.py) apply these."""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Generator
from typing import Any

import pytest

from ...support.errors import PyAirtableError
from ...support.redact import Redactor
from .masking import mask_longrepr, mask_sections


class FirstReports:
    """Which test reported each failure first, so the others only refer to it. A
    failure is recognised by its origin: each test is raised a fresh copy of it."""

    def __init__(self) -> None:
        self._first: dict[int, tuple[PyAirtableError, str]] = {}
        self._lock = threading.Lock()

    def first(self, error: PyAirtableError, nodeid: str) -> str:
        if error.first_nodeid:  # another process (the xdist controller) knows it
            return error.first_nodeid
        origin = error.origin or error
        with self._lock:  # the origin is kept, so its id is never reused meanwhile
            return self._first.setdefault(id(origin), (origin, nodeid))[1]


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


def redact_report(report_: Any, redact: Redactor, as_text: Callable[[str, str], Any]) -> None:
    """Mask secrets in a test report: its captured output sections and its failure,
    which go to the terminal, junit XML and xdist's controller. pytest's own failure is
    masked inside its structure, values only (masking.py: its code stays as written);
    another (ours) whose text changed is replaced by ``as_text(text, headline)``."""
    report_.sections = mask_sections(report_.sections, redact)
    longrepr = report_.longrepr
    if longrepr is None:
        return
    masked = mask_longrepr(longrepr, redact)
    if masked is not None:
        report_.longrepr = masked
        return
    text = str(longrepr)
    shown = redact(text)
    if shown != text:
        crash = getattr(longrepr, "reprcrash", None)
        message = getattr(crash, "message", None) or shown.splitlines()[0]
        report_.longrepr = as_text(shown, redact(message))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """xdist sends a worker's report as text: give it back its one-line summary."""
    text = report.longrepr
    if isinstance(text, str) and text.startswith("[pyairtable] "):
        report.longrepr = FailureRepr(text, text.splitlines()[0])  # type: ignore[assignment]


class JunitSections:
    """junit XML keeps a report's ``pyairtable: ...`` sections (a test's service logs) in
    its test case's ``<system-out>``, where CI servers show a failed test's output:
    pytest writes only captured output there, and only with ``junit_logging``. Through
    pytest's junitxml internals, checked by a test (tests/test_test_logs.py)."""

    def __init__(self, config: pytest.Config, masking: Callable[[], Callable[[str], str]]) -> None:
        self.config = config
        self.masking = masking  # the run's, when it writes: a worker's report may not be
        # masked again yet (the controller does that as it takes the report)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        if report.when == "teardown":
            self._write(report)  # junit closes the test case with this report
        result = yield
        if report.when != "teardown":
            self._write(report)  # after junit's own element (failure, error)
        return result

    def _write(self, report: pytest.TestReport) -> None:
        texts = [(t, c) for t, c in report.sections if t.startswith("pyairtable: ")]
        if not texts:
            return
        try:
            from xml.etree import ElementTree

            from _pytest.junitxml import bin_xml_escape, xml_key
        except ImportError:  # another pytest: the terminal still shows them
            return
        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        redact = self.masking()
        node = ElementTree.Element("system-out")
        node.text = bin_xml_escape("".join(f"{f' {t} ':-^80}\n{redact(c)}\n" for t, c in texts))
        xml.node_reporter(report).append(node)
