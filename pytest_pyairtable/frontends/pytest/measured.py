"""Coverage of the stack's host-run services, when coverage.py measures this pytest run
(pytest-cov's ``--cov``, ``coverage run -m pytest``): the stack's owner hands the run's
coverage settings down to its backend (backends/measure.py says how a service is
measured), and stops the stack as the test loop ends, so the services write their data
before pytest-cov combines it.

Without it, a stack under xdist is stopped in ``pytest_unconfigure`` (the controller
runs no fixture), long after pytest-cov combined and reported: the services' lines
would be missing from the report.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ...session.runtime import Runtime

PLUGIN = "pyairtable-coverage"


class StopBeforeCombine:
    """Stops the stack when the test loop ends: inside pytest-cov's own wrapper of the
    loop, which combines the data files once the loop returns (``trylast`` puts this
    wrapper inside every wrapper without it)."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self.stop = stop  # the stack owner's: idempotent, the end of the run finds it stopped

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield
        self.stop()
        return result


def measure_services(config: pytest.Config, runtime: Runtime, stop: Callable[[], None]) -> None:
    """If coverage measures this run, the stack's host-run services are measured too
    (not a kept stack's: they outlive the report); ``stop`` stops the stack. Else
    nothing changes."""
    from ...backends.measure import of_this_process

    found = of_this_process()
    if isinstance(found, str):
        runtime.notices.append(found)
    elif found is not None and runtime.settings.keep:
        runtime.notices.append(
            "coverage: the services are not measured: --pyairtable-keep keeps them "
            "running after the report. Fix: run without it to measure them."
        )
    elif found is not None:
        runtime.coverage = found
        config.pluginmanager.register(StopBeforeCombine(stop), PLUGIN)
