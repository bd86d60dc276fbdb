"""Readiness checks, one small class per kind, behind the ``Probe`` protocol.

A probe's ``check`` returns details worth showing (response time, memory use) or
raises ``ProbeFailed`` with the reason. It makes one attempt; ``waiting`` repeats it.
New kinds register in ``PROBES`` (or through the ``pytest_pyairtable_make_probe`` hook).
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ..model.probespec import ProbeSpec


class ProbeFailed(Exception):
    """One attempt did not pass; the message says why."""


class Probe(Protocol):
    def check(self) -> dict[str, Any]: ...


class ProbeContext:
    """What a probe may need beyond its spec."""

    def __init__(self, log_path: Path | None = None, attempt_timeout: float = 2.0) -> None:
        self.log_path = log_path
        self.attempt_timeout = attempt_timeout


class HttpProbe:
    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        import httpx  # imported on use: a run that needs no service stays fast

        self.spec = spec
        self._client = httpx.Client(timeout=ctx.attempt_timeout, trust_env=False)

    def check(self) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            response = self._client.get(self.spec.target)
        except Exception as exc:  # any transport failure is a failed attempt, not a crash
            raise ProbeFailed(f"{type(exc).__name__}: {exc}") from None
        elapsed = time.perf_counter() - start
        ok = (
            response.status_code == self.spec.status
            if self.spec.status
            else response.status_code < 400
        )
        if not ok:
            want = self.spec.status or "< 400"
            raise ProbeFailed(f"HTTP {response.status_code} (want {want}): {response.text[:200]}")
        if self.spec.json:
            _match_json(response, self.spec.json)
        return {"status": response.status_code, "response_ms": round(elapsed * 1000, 2)}

    def close(self) -> None:
        self._client.close()


def _match_json(response: Any, expected: Mapping[str, Any]) -> None:
    try:
        body = response.json()
    except ValueError:
        raise ProbeFailed(f"body is not JSON: {response.text[:200]!r}") from None
    for key, want in expected.items():
        got = body.get(key) if isinstance(body, dict) else None
        if got != want:
            raise ProbeFailed(f"JSON field {key!r} is {got!r}, want {want!r}")


class PostgresProbe:
    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        self.spec = spec
        self.timeout = max(1, int(ctx.attempt_timeout))

    def check(self) -> dict[str, Any]:
        import psycopg

        try:
            with psycopg.connect(self.spec.target, connect_timeout=self.timeout) as conn:
                conn.execute("SELECT 1")
                missing = [
                    t
                    for t in self.spec.tables
                    if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone() == (None,)
                ]
                if missing:
                    raise ProbeFailed(f"missing table(s): {', '.join(missing)}")
                details: dict[str, Any] = {"version": conn.info.parameter_status("server_version")}
                if self.spec.migrations_table:
                    table = self.spec.migrations_table
                    if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
                        raise ProbeFailed(f"migrations table {table!r} does not exist yet")
                    query = psycopg.sql.SQL("SELECT count(*) FROM {}").format(
                        psycopg.sql.Identifier(*table.split("."))
                    )
                    row = conn.execute(query).fetchone()
                    details["migrations"] = row[0] if row else 0
                return details
        except psycopg.Error as exc:
            raise ProbeFailed(f"{type(exc).__name__}: {str(exc).strip()}") from None


class RedisProbe:
    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        self.spec = spec
        self.timeout = ctx.attempt_timeout

    def check(self) -> dict[str, Any]:
        import redis

        client = redis.Redis.from_url(
            self.spec.target, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
        )
        key = f"pyairtable:probe:{uuid.uuid4().hex}"
        try:
            client.ping()
            client.set(key, "1", ex=10)
            if client.get(key) != b"1":
                raise ProbeFailed("SET/GET round trip returned a different value")
            client.delete(key)
            memory = client.info("memory").get("used_memory_human", "?")
            return {"memory": memory, "version": client.info("server").get("redis_version", "?")}
        except redis.RedisError as exc:
            raise ProbeFailed(f"{type(exc).__name__}: {exc}") from None
        finally:
            client.close()


class TcpProbe:
    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        host, _, port = spec.target.rpartition(":")
        self.address = (host.strip("[]") or "127.0.0.1", int(port))
        self.timeout = ctx.attempt_timeout

    def check(self) -> dict[str, Any]:
        try:
            with socket.create_connection(self.address, timeout=self.timeout):
                return {}
        except OSError as exc:
            raise ProbeFailed(f"{type(exc).__name__}: {exc}") from None


class CommandProbe:
    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        self.argv = list(spec.argv)
        self.timeout = ctx.attempt_timeout

    def check(self) -> dict[str, Any]:
        try:
            done = subprocess.run(
                self.argv,
                capture_output=True,
                timeout=self.timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProbeFailed(f"{type(exc).__name__}: {exc}") from None
        if done.returncode != 0:
            out = (done.stdout + done.stderr).decode(errors="replace").strip()[-200:]
            raise ProbeFailed(f"exit code {done.returncode}: {out}")
        return {}


class LogProbe:
    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        self.pattern = re.compile(spec.target)
        self.log_path = ctx.log_path

    def check(self) -> dict[str, Any]:
        if self.log_path is None or not self.log_path.exists():
            raise ProbeFailed("no output yet")
        text = self.log_path.read_text(errors="replace")
        if not self.pattern.search(text):
            raise ProbeFailed(f"output does not match /{self.pattern.pattern}/ yet")
        return {}


class StartedProbe:
    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        pass

    def check(self) -> dict[str, Any]:
        return {}


ProbeFactory = Callable[[ProbeSpec, ProbeContext], Probe]

PROBES: dict[str, ProbeFactory] = {
    "http": HttpProbe,
    "postgres": PostgresProbe,
    "redis": RedisProbe,
    "tcp": TcpProbe,
    "command": CommandProbe,
    "log": LogProbe,
    "started": StartedProbe,
}


def make_probe(spec: ProbeSpec, ctx: ProbeContext) -> Probe:
    return PROBES[spec.kind](spec, ctx)


def probe_once(spec: ProbeSpec, timeout: float = 1.0) -> str | None:
    """One attempt, for a stack that should already be up: None if it passes, else why."""
    probe = make_probe(spec, ProbeContext(attempt_timeout=timeout))
    try:
        probe.check()
    except ProbeFailed as exc:
        return str(exc)
    finally:
        close = getattr(probe, "close", None)
        if close:
            close()
    return None
