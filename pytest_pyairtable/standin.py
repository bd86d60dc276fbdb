"""A stand-in for a PyAirtable application service, for the dev stack and the tests.

The real services' images are not needed to exercise the orchestration: this listens
on the service's port, answers ``/health`` with 200 only while every dependency it was
given answers (PostgreSQL, Redis, upstream ``/health``), takes ``--startup-delay``
seconds before it listens, and drains in-flight requests on SIGTERM.

    python -m pytest_pyairtable.standin --name api-gateway --port 8000 \
        --postgres postgresql://... --redis redis://... --upstream http://127.0.0.1:8002

DATABASE_URL, REDIS_URL and UPSTREAM_URLS (comma-separated) in the environment add to
the flags, as the real services read their settings.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CACHE_SECONDS = 0.2  # a dependency seen healthy this recently is not asked again


def check_postgres(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=2) as conn:
        conn.execute("SELECT 1")


def check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def check_upstream(url: str) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=2)
    try:
        conn.request("GET", (parts.path.rstrip("/") or "") + "/health")
        status = conn.getresponse().status
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"HTTP {status}")


class Dependencies:
    def __init__(self, checks: dict[str, Callable[[], None]]) -> None:
        self.checks = checks
        self._ok_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def report(self) -> dict[str, str]:
        result = {}
        for name, check in self.checks.items():
            with self._lock:
                fresh = self._ok_until.get(name, 0.0) > time.monotonic()
            if fresh:
                result[name] = "ok"
                continue
            try:
                check()
            except Exception as exc:  # any failure of a dependency makes us unhealthy
                result[name] = f"error: {type(exc).__name__}"
                continue
            with self._lock:
                self._ok_until[name] = time.monotonic() + CACHE_SECONDS
            result[name] = "ok"
        return result


def make_handler(name: str, deps: Dependencies) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] in ("/health", "/healthz", "/api/health"):
                report = deps.report()
                healthy = all(v == "ok" for v in report.values())
                body = {
                    "status": "healthy" if healthy else "unhealthy",
                    "service": name,
                    "dependencies": report,
                }
                self._send(200 if healthy else 503, body)
            elif self.path == "/":
                self._send(200, {"service": name, "standin": True})
            else:
                self._send(404, {"error": "not found"})

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes poll often; their lines would drown the log

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pytest_pyairtable.standin")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--startup-delay", type=float, default=0.0)
    parser.add_argument("--postgres", action="append", default=[])
    parser.add_argument("--redis", action="append", default=[])
    parser.add_argument("--upstream", action="append", default=[])
    args = parser.parse_args(argv)
    # As a real service would, take connection settings from the environment too.
    env = os.environ
    args.postgres += [env["DATABASE_URL"]] if env.get("DATABASE_URL") else []
    args.redis += [env["REDIS_URL"]] if env.get("REDIS_URL") else []
    args.upstream += [u for u in env.get("UPSTREAM_URLS", "").split(",") if u]

    # Import client libraries now, so the first /health answer is not paying for them.
    if args.postgres:
        import psycopg  # noqa: F401
    if args.redis:
        import redis  # noqa: F401

    # SIGTERM and SIGINT are blocked in every thread and taken by the main thread with
    # sigwait: no handler can run inside a lock the main thread holds (an Event.set()
    # from a handler deadlocks so), and none can land on the server's thread unseen.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    print(f"{args.name}: starting (ready in {args.startup_delay}s)", flush=True)
    if args.startup_delay > 0 and signal.sigtimedwait(stop_signals, args.startup_delay):
        return 0

    checks: dict[str, Callable[[], None]] = {}
    for dsn in args.postgres:
        checks[f"postgres {urlsplit(dsn).port}"] = functools.partial(check_postgres, dsn)
    for url in args.redis:
        checks[f"redis {urlsplit(url).port}"] = functools.partial(check_redis, url)
    for url in args.upstream:
        checks[url] = functools.partial(check_upstream, url)

    try:
        server = ThreadingHTTPServer(
            (args.host, args.port), make_handler(args.name, Dependencies(checks))
        )
    except OSError as exc:
        print(f"{args.name}: cannot listen on {args.host}:{args.port}: {exc.strerror}", flush=True)
        return 1
    server.daemon_threads = False  # drain: shutdown waits for requests in flight
    server.block_on_close = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    print(f"{args.name}: listening on http://{args.host}:{args.port}", flush=True)
    signal.sigwait(stop_signals)
    print(f"{args.name}: draining", flush=True)
    server.shutdown()
    server.server_close()
    thread.join()
    print(f"{args.name}: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
