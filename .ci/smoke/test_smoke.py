"""Runs from the installed wheel (see .ci/package), with free ports."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

import pytest_pyairtable


def test_the_plugin_is_the_installed_one() -> None:
    installed = Path(os.environ["PACKAGE_VENV"]).resolve()
    assert installed in Path(pytest_pyairtable.__file__).resolve().parents
    assert (Path(pytest_pyairtable.__file__).parent / "py.typed").is_file()


def test_a_service_from_the_compose_file(pyairtable_api: pytest_pyairtable.Handle) -> None:
    assert pyairtable_api.port != 8000  # --pyairtable-free-ports
    assert httpx.get(pyairtable_api.url + "/health").json()["status"] == "healthy"
