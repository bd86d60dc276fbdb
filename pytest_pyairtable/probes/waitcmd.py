"""``pyairtable wait URL...``: the seed's wait-for-database/redis/service scripts in one.

Usable in a Dockerfile or a CI step: exit 0 once every URL is ready, else non-zero with
the last error. The seed's MAX_RETRIES, RETRY_INTERVAL and TIMEOUT are honoured.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError
from ..model.probespec import ProbeSpec
from ..redact import Redactor
from .checks import BaseProbe, HttpProbe, Probe, ProbeContext, ProbeFailed, make_probe
from .waiting import Gone, wait_ready

DISCOVERY_PATHS = ("/health", "/healthz", "/ready", "/status")


class DiscoveringHttpProbe(BaseProbe):
    """For a bare base URL: the first of the usual health paths that answers wins."""

    def __init__(self, base: str, ctx: ProbeContext) -> None:
        self.probes = [
            (path, HttpProbe(ProbeSpec("http", base.rstrip("/") + path), ctx))
            for path in DISCOVERY_PATHS
        ]

    def check(self) -> dict[str, Any]:
        errors = []
        for path, probe in self.probes:
            try:
                return {**probe.check(), "endpoint": path}
            except ProbeFailed as exc:
                errors.append(f"{path}: {exc}")
        raise ProbeFailed("; ".join(errors))

    def close(self) -> None:
        for _, probe in self.probes:
            probe.close()


def probe_for(
    url: str, tables: Sequence[str], migrations_table: str | None, ctx: ProbeContext
) -> Probe:
    scheme = urlsplit(url).scheme
    if scheme in ("postgres", "postgresql"):
        return make_probe(
            ProbeSpec("postgres", url, tables=tuple(tables), migrations_table=migrations_table), ctx
        )
    if scheme in ("redis", "rediss"):
        return make_probe(ProbeSpec("redis", url), ctx)
    if scheme in ("http", "https"):
        if urlsplit(url).path in ("", "/"):
            return DiscoveringHttpProbe(url, ctx)
        return make_probe(ProbeSpec("http", url), ctx)
    if scheme == "tcp":
        return make_probe(ProbeSpec("tcp", urlsplit(url).netloc), ctx)
    raise ConfigError(
        f"cannot wait for {url!r}: unknown scheme {scheme!r}. "
        "Fix: use postgres://, redis://, http(s):// or tcp://host:port."
    )


@dataclass
class WaitResult:
    url: str
    ok: bool
    seconds: float
    attempts: int
    details: dict[str, Any]
    error: str


def wait_for(
    url: str,
    *,
    timeout: float,
    interval: float,
    max_retries: int | None = None,
    tables: Sequence[str] = (),
    migrations_table: str | None = None,
) -> WaitResult:
    probe = probe_for(
        url, tables, migrations_table, ProbeContext(attempt_timeout=min(5.0, timeout))
    )
    start = time.monotonic()
    attempts = 0

    def counted() -> str | None:  # called before each attempt: MAX_RETRIES bounds them
        nonlocal attempts
        attempts += 1
        if max_retries is not None and attempts > max_retries:
            raise Gone(f"gave up after MAX_RETRIES={max_retries} attempts")
        return None

    try:
        outcome = wait_ready(probe, budget=timeout, cap=interval, alive=counted)
        return WaitResult(
            url, True, time.monotonic() - start, outcome.attempts, outcome.details, ""
        )
    except (TimeoutError, Gone) as exc:
        return WaitResult(url, False, time.monotonic() - start, attempts, {}, str(exc))
    finally:
        probe.close()


def describe(result: WaitResult, redact: Redactor) -> str:
    shown = redact(_mask_url(result.url))
    took = f"{result.seconds:.2f}s ({result.attempts} attempts)"
    if result.ok:
        extras = ", ".join(f"{k}={v}" for k, v in result.details.items())
        return f"ready: {shown} in {took}" + (f": {extras}" if extras else "")
    return f"NOT ready: {shown} after {took}: {redact(result.error)}"


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
