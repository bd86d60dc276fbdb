"""Test reports as the stack shapes them: a stack failure is reported in full once (by
the first test it failed), its secrets masked in every channel (terminal, junit XML,
what xdist forwards). The roles' hooks (roles.py) apply these."""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
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
