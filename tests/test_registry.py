"""The backend registry, the extras pyproject ships, the docs' backend list and the
option's help agree: a backend added in one place and forgotten in another fails here.
(The compliance cases are checked against the registry in test_backend_compliance.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_pyairtable.backends import BACKENDS, REQUIREMENTS
from pytest_pyairtable.backends.base import backend_class
from pytest_pyairtable.session.settings import BY_NAME

ROOT = Path(__file__).resolve().parent.parent


def _extras() -> dict[str, list[str]]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras: dict[str, list[str]] = project["optional-dependencies"]
    return extras


def _distribution(requirement: str) -> str:
    """The import name a requirement such as ``pytest-docker>=3.1`` installs."""
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("-", "_")


@pytest.mark.parametrize("name", list(BACKENDS))
def test_each_registered_backend_loads_under_its_name(name: str) -> None:
    assert backend_class(name).name == name


@pytest.mark.parametrize(("name", "needs"), sorted(REQUIREMENTS.items()))
def test_what_a_backend_needs_comes_from_an_extra_that_ships_it(
    name: str, needs: dict[str, str]
) -> None:
    assert name in BACKENDS
    extras = _extras()
    for module, fix in needs.items():
        named = re.findall(r"pytest-pyairtable\[(\w+)\]", fix)
        assert named, f"{name}: the fix for {module} names no extra: {fix!r}"
        for extra in named:
            assert extra in extras, f"{name}: the extra [{extra}] is not in pyproject"
            shipped = {_distribution(r) for r in extras[extra]}
            assert module in shipped, f"[{extra}] does not ship {module}: {sorted(shipped)}"
            assert module in {_distribution(r) for r in extras["dev"]}, "dev has them all"


def test_the_docs_and_the_options_help_name_every_backend() -> None:
    reference = (ROOT / "docs" / "reference.md").read_text()
    row = next(line for line in reference.splitlines() if "`--pyairtable-backend" in line)
    readme = (ROOT / "README.md").read_text()
    readme_row = next(line for line in readme.splitlines() if "`--pyairtable-backend`" in line)
    helptext = BY_NAME["backend"].help
    for name in BACKENDS:
        assert f"`{name}`" in row, f"docs/reference.md's backend row lacks {name}"
        assert f"`{name}`" in readme_row, f"README.md's backend row lacks {name}"
        assert name in helptext, f"--pyairtable-backend's help lacks {name}"
