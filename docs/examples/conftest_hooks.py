"""Example plugin: a custom readiness probe and a reaction to "service ready".

Copy into your conftest.py (or ship it as a plugin). It is run by tests/test_docs.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from pytest_pyairtable.probes.checks import ProbeFailed

READY_LOG = Path("services-ready.txt")


class VersionProbe:
    """Ready when /health answers 200 *and* reports the version we expect."""

    def __init__(self, url: str, version: str) -> None:
        self.url, self.version = url, version

    def check(self) -> dict[str, Any]:
        try:
            body = httpx.get(self.url, timeout=1).json()
        except Exception as exc:  # any failure is one failed attempt
            raise ProbeFailed(f"{type(exc).__name__}: {exc}") from None
        if body.get("service") != self.version:
            raise ProbeFailed(f"wrong service/version: {body.get('service')!r}")
        return {"version": self.version}


def pytest_pyairtable_make_probe(spec: Any, service: Any, context: Any) -> Any:
    """Replace the probe of services that declare EXPECTED_VERSION; keep the others."""
    expected = service.environment.get("EXPECTED_VERSION")
    if expected and spec.kind == "http":
        return VersionProbe(spec.target, expected)
    return None


def pytest_pyairtable_service_ready(service: Any, details: dict[str, Any]) -> None:
    """React to a ready service: seed data, warm a cache, or (here) record it."""
    with READY_LOG.open("a") as f:
        f.write(f"{service.name} tier={service.tier} {details}\n")
