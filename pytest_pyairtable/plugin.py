"""The pytest11 entry point (``pytest_pyairtable.plugin``): thin. The pytest front end
lives in frontends/pytest/ (options, roles, fixtures, reports, lifecycle); this module
hands pytest its module-level hooks and fixtures. Each role's own hooks are methods of
the role object that pytest_configure registers."""

from __future__ import annotations

# isort: off
# First: the package's own modules then load with Python's plain loader (plainimports.py).
from .support import plainimports  # noqa: F401
from .frontends.pytest.fixtures import _pyairtable_session, pyairtable_faults, pyairtable_reset
from .frontends.pytest.lifecycle import (
    pytest_addhooks,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_load_initial_conftests,
    pytest_runtest_setup,
    pytest_runtest_teardown,
    pytest_sessionstart,
    pytest_unconfigure,
)
from .frontends.pytest.options import pytest_addoption
from .frontends.pytest.reports import pytest_runtest_logreport
# isort: on

__all__ = [
    "_pyairtable_session",
    "pyairtable_faults",
    "pyairtable_reset",
    "pytest_addhooks",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_load_initial_conftests",
    "pytest_runtest_logreport",
    "pytest_runtest_setup",
    "pytest_runtest_teardown",
    "pytest_sessionstart",
    "pytest_unconfigure",
]
