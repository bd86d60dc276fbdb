"""``pyairtable wait URL...``: the seed's wait-for-database/redis/service scripts in one.

Usable in a Dockerfile or a CI step: exit 0 once every URL is ready, else non-zero with
the last error. The seed's MAX_RETRIES, RETRY_INTERVAL and TIMEOUT are honoured. Every
URL and setting is checked before the first wait: a typo is an error at once, not a
timeout later.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..model.durations import MAX_SECONDS, go_duration
from ..model.probespec import ProbeSpec, url_problem
from ..support.errors import ConfigError
from ..support.redact import Redactor, mask_url
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


@dataclass(frozen=True)
class WaitOptions:
    timeout: float  # seconds per URL
    interval: float  # the longest pause between attempts
    max_retries: int | None


def wait_options(
    timeout: float | None, interval: float | None, environ: Mapping[str, str]
) -> WaitOptions:
    """The options as given, else the seed's TIMEOUT, RETRY_INTERVAL and MAX_RETRIES."""
    return WaitOptions(
        timeout=_seconds(timeout, "--timeout", environ, "TIMEOUT", 150.0),
        interval=_seconds(interval, "--interval", environ, "RETRY_INTERVAL", 0.5),
        max_retries=_count(environ.get("MAX_RETRIES", ""), "MAX_RETRIES"),
    )


def _seconds(
    given: float | None, option: str, environ: Mapping[str, str], variable: str, default: float
) -> float:
    if given is not None:
        where, value = option, given
    elif environ.get(variable, "").strip():
        where, raw = variable, environ[variable].strip()
        try:
            value = float(raw)
        except ValueError:
            try:
                value = go_duration(raw) / 1e9
            except ValueError:
                value = math.nan
    else:
        return default
    if not 0 <= value <= MAX_SECONDS:  # nan, inf and centuries too
        shown = environ[variable] if where == variable else value
        raise ConfigError(
            f"{where}={shown!r} is not a number of seconds (0 to {MAX_SECONDS}). Fix: e.g. "
            f"{where}=30 (durations such as 1m30s work too)."
        )
    return value


def _count(raw: str, variable: str) -> int | None:
    if not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(
            f"{variable}={raw!r} is not a number of attempts. Fix: e.g. {variable}=30."
        )
    return value


_URL_SCHEMES = ("postgres", "postgresql", "redis", "rediss", "http", "https", "tcp")


def check_url(url: str) -> None:
    """Raise ConfigError, the URL's password masked, when ``url`` cannot be waited for."""
    scheme = url.partition("://")[0] if "://" in url else ""
    problem = url_problem(url, _URL_SCHEMES, need_port=scheme == "tcp")
    if problem:
        raise ConfigError(
            f"cannot wait for {mask_url(url)!r}: {problem}. Fix: use postgres://, redis://, "
            "http(s):// or tcp://HOST:PORT."
        )


def probe_for(
    url: str, tables: Sequence[str], migrations_table: str | None, ctx: ProbeContext
) -> Probe:
    check_url(url)
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
    attempt_timeout = max(0.1, min(5.0, timeout))  # one attempt, even with --timeout 0
    probe = probe_for(url, tables, migrations_table, ProbeContext(attempt_timeout=attempt_timeout))
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
    shown = redact(mask_url(result.url))
    took = f"{result.seconds:.2f}s ({result.attempts} attempts)"
    if result.ok:
        extras = ", ".join(f"{k}={v}" for k, v in result.details.items())
        return f"ready: {shown} in {took}" + (f": {extras}" if extras else "")
    return f"NOT ready: {shown} after {took}: {redact(result.error)}"
