"""The pytest11 entry point (``pytest_pyairtable.plugin``): thin. The pytest front end
lives in frontends/pytest/; this module hands pytest its hooks and fixtures."""

from __future__ import annotations

# isort: off
# First: the package's own modules then load with Python's plain loader (plainimports.py).
from .support import plainimports  # noqa: F401
from .frontends.pytest.plugin import (
    _pyairtable_session,
    pyairtable_faults,
    pyairtable_reset,
    pytest_addhooks,
    pytest_addoption,
    pytest_collection,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_configure_node,
    pytest_report_header,
    pytest_runtest_logreport,
    pytest_runtest_makereport,
    pytest_runtest_setup,
    pytest_runtest_teardown,
    pytest_runtestloop,
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_terminal_summary,
    pytest_unconfigure,
    pytest_xdist_setupnodes,
)
# isort: on

__all__ = [
    "_pyairtable_session",
    "pyairtable_faults",
    "pyairtable_reset",
    "pytest_addhooks",
    "pytest_addoption",
    "pytest_collection",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_configure_node",
    "pytest_report_header",
    "pytest_runtest_logreport",
    "pytest_runtest_makereport",
    "pytest_runtest_setup",
    "pytest_runtest_teardown",
    "pytest_runtestloop",
    "pytest_sessionfinish",
    "pytest_sessionstart",
    "pytest_terminal_summary",
    "pytest_unconfigure",
    "pytest_xdist_setupnodes",
]
