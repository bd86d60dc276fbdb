"""Coverage of the Python services this host runs, when the test run measures its own.

A run measured by coverage.py (pytest-cov's ``--cov``, ``coverage run -m pytest``, or a
pytest started with ``COVERAGE_PROCESS_START``) measures its host-run services too, the
way coverage measures a subprocess (its ``[run] patch = subprocess``): the service gets
the run's own coverage settings in ``COVERAGE_PROCESS_CONFIG``, which coverage reads at
interpreter start-up (its ``.pth`` file, or our ``sitecustomize`` put first on the
service's PYTHONPATH, for an interpreter whose site directories hold no such file), and
writes parallel data files beside the run's data file, where pytest-cov combines them
into the report after the last test. The settings are changed in three ways:

- ``parallel``: each process writes ``<data file>.<host>.<pid>.<random>``, the files
  pytest-cov (and ``coverage combine``) gathers;
- ``sigterm``: a service stopped by SIGTERM (the default stop signal) saves its data
  before it dies. Our sitecustomize puts a handler of its own in place of coverage's,
  which a second SIGTERM during the save enters again (the data file is then broken),
  and handles any other stop signal the service is given the same way;
- relative ``omit``/``include`` patterns are made absolute against this process's working
  directory, since the service may work in another (``source`` and the data file are made
  absolute by coverage itself).

Only Python services can be measured; nothing decides which ones are: a process that is
not a Python interpreter never reads the variables, one that is reads them at start-up.
Nothing here imports coverage: it is looked at only when the run already imported it.

Needs coverage 7.10 or later (``CoverageConfig.serialize``, ``COVERAGE_PROCESS_CONFIG``),
in this process and in the service's interpreter; pytest-cov 7 already requires it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_VAR = "COVERAGE_PROCESS_CONFIG"
STOP_SIGNAL_VAR = "PYAIRTABLE_COVERAGE_STOP_SIGNAL"
SITE_DIR = Path(__file__).resolve().with_name("sitedir")  # holds our sitecustomize.py


@dataclass(frozen=True)
class ServiceCoverage:
    """How a host-run service is measured: coverage's serialized settings (as its
    ``patch = subprocess`` hands them on), changed for a service (see the module's doc)."""

    config: str  # CoverageConfig.serialize(): base64 of JSON
    data_file: str  # absolute; a service writes <data_file>.<suffix> beside it

    @classmethod
    def from_config(cls, config: Any, cwd: str | None = None) -> ServiceCoverage:
        """From a ``coverage.CoverageConfig`` (copied, never changed)."""
        copy = type(config).deserialize(config.serialize())  # source, data file: absolute
        copy.parallel = True
        copy.sigterm = True
        base = cwd or os.getcwd()
        copy.run_omit = _absolute_patterns(copy.run_omit, base)
        copy.run_include = _absolute_patterns(copy.run_include, base)
        return cls(config=copy.serialize(), data_file=str(copy.data_file))

    def environment(self, env: Mapping[str, str], stop_signal: signal.Signals) -> dict[str, str]:
        """What a service's environment ``env`` gains so it is measured."""
        path = [str(SITE_DIR), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        return {
            CONFIG_VAR: self.config,
            "PYTHONPATH": os.pathsep.join(path),
            STOP_SIGNAL_VAR: stop_signal.name,
        }

    def describe(self) -> str:
        return (
            "coverage: Python services run on this host are measured too, their data "
            f"written beside {self.data_file} and combined with the tests'"
        )


def _absolute_patterns(patterns: list[str], base: str) -> list[str]:
    """Each pattern as given, and a relative one also made absolute against ``base``, as
    coverage does against its own working directory (a pattern that starts with a
    wildcard matches anywhere already)."""
    out: list[str] = []
    for pattern in patterns or []:
        out.append(pattern)
        if not pattern.startswith(("*", "?")) and not os.path.isabs(pattern):
            out.append(os.path.join(base, pattern))
    return out


def of_this_process() -> ServiceCoverage | str | None:
    """The services' measurement if coverage measures this process: None when it does
    not (coverage never imported, or not started); a string saying why the services
    cannot be measured, with the fix, when the installed coverage is too old."""
    module = sys.modules.get("coverage")
    if module is None:
        return None  # not imported: not measuring, and not imported by us either
    current = getattr(getattr(module, "Coverage", None), "current", None)
    cov = current() if current is not None else None
    if cov is None:
        return None
    if not hasattr(cov.config, "serialize"):
        version = getattr(module, "__version__", "?")
        return (
            f"coverage: services run on this host are not measured: coverage {version} "
            "cannot hand its settings to another process (7.10 and later can). Fix: "
            "pip install 'coverage>=7.10' (pytest-cov 7 requires it)."
        )
    return ServiceCoverage.from_config(cov.config)
