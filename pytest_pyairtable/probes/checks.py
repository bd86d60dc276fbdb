"""Readiness checks, one small class per kind, behind the ``Probe`` protocol.

A probe's ``check`` returns details worth showing (response time, memory use) or
raises ``ProbeFailed`` with the reason. It makes one attempt; ``waiting`` repeats it.
New kinds register in ``PROBES`` (or through the ``pytest_pyairtable_make_probe`` hook).

(Over 350 lines: the protocol, the context each probe gets and the kinds, each a small
class, are what a hook's author reads together, and what they import from one place.)
"""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from ..model.probespec import ProbeSpec
from .bounded import BODY_CAP, AttemptEnded, BodyTooLarge, Limits, http_get
from .logscan import LogScan, PatternTooSlow
from .runcheck import run_command


class Watch(Protocol):
    """A cheap sign, checked often between attempts, that an attempt could now pass."""

    def changed(self) -> bool:
        """True once each time the sign appears (e.g. a port starts to accept)."""


class ProbeFailed(Exception):
    """One attempt did not pass; the message says why."""


class ProbeUnusable(Exception):
    """The probe can never pass as written: the wait ends at once with the cause and fix."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix


class Probe(Protocol):
    """What the readiness gate calls. Built-ins subclass ``BaseProbe``; an object from
    the ``pytest_pyairtable_make_probe`` hook needs only ``check`` (see ``as_probe``)."""

    extra_budget: float  # seconds added to the wait, where another judge keeps its own clock
    watch: Watch | None  # a backend's probe: its cheap sign that an attempt could pass now

    def check(self) -> dict[str, Any]:
        """One attempt: details worth showing, or raise ProbeFailed with the reason."""

    def rest(self) -> float:
        """The least pause before the next attempt, for what the last one cost (0: the
        gate's own backoff decides)."""

    def close(self) -> None:
        """Release clients and connections; called once, after the last attempt."""


class BaseProbe:
    extra_budget = 0.0
    watch: Watch | None = None

    def check(self) -> dict[str, Any]:
        raise NotImplementedError

    def rest(self) -> float:
        """No pause of its own by default: an attempt costs little beside the service."""
        return 0.0

    def close(self) -> None:
        """Nothing to release by default."""


@runtime_checkable
class _Checks(Protocol):
    def check(self) -> dict[str, Any]: ...


@runtime_checkable
class _Closes(Protocol):
    def close(self) -> None: ...


class _UserProbe(BaseProbe):
    """A hook's probe object, which promises only ``check``."""

    def __init__(self, probe: _Checks) -> None:
        self.probe = probe

    def check(self) -> dict[str, Any]:
        return self.probe.check()

    def close(self) -> None:
        if isinstance(self.probe, _Closes):
            self.probe.close()


def as_probe(obj: object) -> Probe:
    """A probe the gate can use, from what a user's hook returned."""
    if isinstance(obj, BaseProbe):
        return obj
    if not isinstance(obj, _Checks):
        raise TypeError(f"pytest_pyairtable_make_probe returned {obj!r}, which has no check()")
    return _UserProbe(obj)


class ProbeContext:
    """What a probe may need beyond its spec."""

    def __init__(
        self,
        log_path: Path | None = None,
        attempt_timeout: float = 2.0,
        *,
        env: Mapping[str, str] | None = None,
        cancelled: Callable[[], bool] = lambda: False,
        log_offset: int = 0,
        awaited: Callable[[], bool] = lambda: True,
    ) -> None:
        self.log_path = log_path
        self.log_offset = log_offset  # a restarted service's earlier output is not its own
        self.attempt_timeout = attempt_timeout
        self.env = env  # a command's environment: the service's, as in its container
        self.cancelled = cancelled  # true once the run stops: end the attempt at once
        # whether a test or a dependent waits for the service yet: a probe may spend less
        # on being early for one that nobody waits for
        self.awaited = awaited


class HttpProbe(BaseProbe):
    """One GET per attempt through the standard library (no redirects followed, no proxy),
    on a fresh connection: importing an HTTP client package cost a run needing services
    ~0.1-0.2 s, more than the requests it makes. The attempt keeps ``bounded``'s limits:
    its deadline, the run's Ctrl-C, and a body read only for ``json:``, up to BODY_CAP."""

    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        self.spec = spec
        self.timeout = ctx.attempt_timeout
        self.cancelled = ctx.cancelled
        parts = urlsplit(spec.target)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Accept": "*/*"}
        if parts.username is not None:  # credentials in the URL, sent as basic auth
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()

    def check(self) -> dict[str, Any]:
        start = time.perf_counter()
        limits = Limits.start(self.timeout, self.cancelled)
        try:
            got = http_get(
                self._host,
                self._port,
                self._path,
                self._headers,
                limits,
                https=self._https,
                body=bool(self.spec.json),
            )
        except AttemptEnded as exc:
            raise ProbeFailed(str(exc)) from None
        except BodyTooLarge as exc:
            raise ProbeFailed(
                f"{exc} ({BODY_CAP // 1024} KiB), the most an HTTP probe reads. Fix: point "
                "the probe at an endpoint with a small body, or check only its status "
                "(without json:, no body is read)"
            ) from None
        except Exception as exc:  # any transport failure is a failed attempt, not a crash
            raise ProbeFailed(f"{type(exc).__name__}: {exc}") from None
        elapsed = time.perf_counter() - start
        text = got.body.decode(got.charset, errors="replace")
        ok = got.status == self.spec.status if self.spec.status else got.status < 400
        if not ok:
            want = self.spec.status or "< 400"
            raise ProbeFailed(f"HTTP {got.status} (want {want}): {text[:200]}")
        if self.spec.json:
            _match_json(text, self.spec.json)
        return {"status": got.status, "response_ms": round(elapsed * 1000, 2)}


def _match_json(text: str, expected: Mapping[str, Any]) -> None:
    try:
        body = json.loads(text)
    except ValueError:
        raise ProbeFailed(f"body is not JSON: {text[:200]!r}") from None
    for key, want in expected.items():
        got = body.get(key) if isinstance(body, dict) else None
        if got != want:
            raise ProbeFailed(f"JSON field {key!r} is {got!r}, want {want!r}")


class PostgresProbe(BaseProbe):
    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        self.spec = spec
        self.timeout = max(1, int(ctx.attempt_timeout))

    def check(self) -> dict[str, Any]:
        import psycopg

        try:
            with psycopg.connect(self.spec.target, connect_timeout=self.timeout) as conn:
                # Server-side bounds for what follows (a migration's lock on its table
                # blocked the count until it committed), set in the round trip that
                # checks the connection; not as startup options: poolers refuse those.
                limit = f"{int(self.timeout * 1000)}ms"
                conn.execute(
                    "SELECT set_config('statement_timeout', %s, false),"
                    " set_config('lock_timeout', %s, false)",
                    (limit, limit),
                )
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


class RedisProbe(BaseProbe):
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


class TcpProbe(BaseProbe):
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


class CommandProbe(BaseProbe):
    """A command that exits 0 when ready (runcheck: its group killed at the attempt's
    end, its output's tail kept)."""

    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        self.argv = list(spec.argv)
        self.timeout = ctx.attempt_timeout
        self.cancelled = ctx.cancelled
        self.env = None if ctx.env is None else dict(ctx.env)

    def check(self) -> dict[str, Any]:
        try:
            code, output = run_command(
                self.argv, self.env, Limits.start(self.timeout, self.cancelled)
            )
        except AttemptEnded as exc:
            raise ProbeFailed(f"{exc} (the command was killed)") from None
        except OSError as exc:
            raise ProbeFailed(f"{type(exc).__name__}: {exc}") from None
        if code != 0:
            out = output.decode(errors="replace").strip()[-200:]
            raise ProbeFailed(f"exit code {code}: {out}")
        return {}


class LogProbe(BaseProbe):
    """Whether the service's output matches a pattern (logscan: bounded in memory and
    in time per search)."""

    def __init__(self, spec: ProbeSpec, ctx: ProbeContext) -> None:
        self.pattern = spec.target
        self.log_path = ctx.log_path
        self.log_offset = ctx.log_offset
        self.scan: LogScan | None = None

    def check(self) -> dict[str, Any]:
        if self.log_path is None or not self.log_path.exists():
            raise ProbeFailed("no output yet")
        if self.scan is None or self.scan.path != self.log_path:
            try:
                self.scan = LogScan(self.pattern, self.log_path, start=self.log_offset)
            except ValueError as exc:
                raise ProbeUnusable(
                    f"log probe /{self.pattern}/ is not a regular expression ({exc})",
                    "correct the pattern",
                ) from None
        try:
            found = self.scan.found()
        except PatternTooSlow as exc:
            raise ProbeUnusable(
                str(exc), "simplify the pattern: no repeat inside a repeat, e.g. a+ for (a+)+"
            ) from None
        except OSError as exc:
            raise ProbeFailed(f"cannot read the output: {exc}") from None
        if not found:
            raise ProbeFailed(f"output does not match /{self.pattern}/ yet")
        return {}


class StartedProbe(BaseProbe):
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


def probe_once(spec: ProbeSpec, timeout: float = 1.0, log_path: Path | None = None) -> str | None:
    """One attempt, for a stack that should already be up: None if it passes, else why."""
    return check_once(make_probe(spec, ProbeContext(log_path, attempt_timeout=timeout)))


def check_once(probe: Probe) -> str | None:
    """One attempt, then release the probe: None if it passed, else why not."""
    try:
        probe.check()
    except ProbeFailed as exc:
        return str(exc)
    except ProbeUnusable as exc:
        return f"{exc.cause}. Fix: {exc.fix}"
    finally:
        probe.close()
    return None
