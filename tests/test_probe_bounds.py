"""Every probe attempt is bounded in time, memory and CPU, and ends when the run stops:
real servers that stream forever, trickle, or never answer; patterns that backtrack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stackrun import PYTEST_ARGS, free_port

from conftest import Background, LeakCheck, Project, wait_until
from pytest_pyairtable.model.probespec import ProbeSpec, parse_probe
from pytest_pyairtable.model.regexcheck import nested_repeat
from pytest_pyairtable.probes import logscan
from pytest_pyairtable.probes.bounded import BODY_CAP
from pytest_pyairtable.probes.checks import ProbeContext, ProbeFailed, ProbeUnusable, make_probe
from pytest_pyairtable.support.errors import ConfigError

# A server that answers every request with a JSON body that never ends, as fast as the
# socket takes it; or that trickles its headers; or that never says anything.
SERVER = r"""
import socket, sys, threading, time
mode = sys.argv[1]
def serve(conn):
    try:
        conn.recv(65536)
        print("connection", flush=True)
        if mode == "silent":
            time.sleep(3600)
        elif mode == "trickle":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while True:
                conn.sendall(b"a")
                time.sleep(0.01)
        else:
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"status": "ok", "pad": "')
            while True:
                conn.sendall(b"x" * 65536)
    except OSError:
        pass
    finally:
        conn.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[2])))
s.listen(64)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Starts SERVER in a mode; returns its URL. Each is killed after the test."""
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    started: list[subprocess.Popen[bytes]] = []

    def start(mode: str) -> str:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, str(script), mode, str(port)], stdout=subprocess.PIPE
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == b"listening\n"
        return f"http://127.0.0.1:{port}/health"

    yield start
    for proc in started:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def in_thread(call: Callable[[], object]) -> BaseException | object:
    """Run ``call`` on a thread (as the gate does); what it returned or raised. A call
    that never returns fails the test instead of hanging it."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the probe attempt did not end"
    return outcome[0]


def probe(kind: str, target: str = "", ctx: ProbeContext | None = None, **kw: object) -> object:
    spec = ProbeSpec(kind, target, **kw)  # type: ignore[arg-type]
    return make_probe(spec, ctx or ProbeContext(attempt_timeout=2.0))


def test_an_endless_body_is_read_only_up_to_the_cap(serve: Callable[[str], str]) -> None:
    url = serve("endless")
    tracemalloc.start()
    try:
        result = in_thread(probe("http", url, json={"status": "ok"}).check)  # type: ignore[attr-defined]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(result, ProbeFailed)
    assert f"the response body exceeded {BODY_CAP} bytes" in str(result)
    assert "Fix:" in str(result)
    assert peak < 4 * BODY_CAP  # the body and its copies, not gigabytes
    # A status check reads no body: the same endless stream passes at once.
    assert in_thread(probe("http", url).check)["status"] == 200  # type: ignore[attr-defined,index]


def test_an_attempt_keeps_its_deadline_against_a_trickle(serve: Callable[[str], str]) -> None:
    url = serve("trickle")
    result = in_thread(probe("http", url, ProbeContext(attempt_timeout=0.3)).check)  # type: ignore[attr-defined]
    assert isinstance(result, ProbeFailed)
    assert "the attempt ran out of its 0.3s" in str(result)


def test_an_attempt_ends_when_the_run_stops(serve: Callable[[str], str]) -> None:
    url = serve("silent")
    stopping = threading.Event()
    # A long attempt against a server that never answers: only the stop can end it soon.
    ctx = ProbeContext(attempt_timeout=3600, cancelled=stopping.is_set)
    attempt = probe("http", url, ctx)
    threading.Timer(0.2, stopping.set).start()
    result = in_thread(attempt.check)  # type: ignore[attr-defined]
    assert isinstance(result, ProbeFailed) and "the run is stopping" in str(result)


def test_ctrl_c_while_a_probe_reads_an_endless_body(
    project: Project, no_leaks: LeakCheck, background: Background, tmp_path: Path
) -> None:
    """The reported run: pytest grew by GBs and neither the timeout nor Ctrl-C ended it."""
    port = free_port()
    script = project.path / "endless.py"
    script.write_text(SERVER)
    project.compose(f"""
        services:
          api:
            image: x
            x-pyairtable:
              local: {{command: [{sys.executable!r}, -u, endless.py, endless, "{port}"]}}
              probe: {{http: "http://127.0.0.1:{port}/health", json: {{status: ok}}}}
    """)
    project.tests("def test_it(pyairtable_api): pass\n")

    def limited() -> None:  # a pytest that still grew would hit this, not the machine
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    proc = background(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, "--pyairtable-logs-dir", "logs"],
        cwd=project.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=limited,
        env={**os.environ, "HEALTH_CHECK_TIMEOUT": "3600"},
    )
    log = project.path / "logs" / "api.log"
    wait_until(
        lambda: proc.poll() is not None or (log.exists() and "connection" in log.read_text()),
        what="the probe to reach the endless body",
    )
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 2, out  # interrupted, not killed or out of memory
    assert no_leaks.leftovers() == [], out


@pytest.mark.parametrize(
    ("pattern", "refused"),
    [
        (r"^(a+)+$", True),
        (r"(a*)*", True),
        (r"(\w+\s?)+$", True),
        (r"((a+))+", True),
        (r"(?:x+)*y", True),
        (r"(a?b*)*", True),
        (r"(\d+\.)+\d+", False),  # each repetition needs its '.': one way to split
        (r"listening on \d+", False),
        (r"ready to accept connections", False),
        (r"(a+){3}", False),  # bounded: polynomial
        (r"\(a+\)+", False),  # escaped parentheses are no group
        (r"[(a+)+]", False),  # nor are they in a class
    ],
)
def test_nested_repeats_are_refused_at_load(pattern: str, refused: bool) -> None:
    assert nested_repeat(pattern) is refused
    if refused:
        with pytest.raises(ConfigError, match=r"nests a repeat in a repeat.*Fix: repeat once"):
            parse_probe({"log": pattern}, "service 'api'")
    else:
        assert parse_probe({"log": pattern}, "service 'api'").target == pattern


def test_a_backtracking_pattern_ends_the_wait_and_never_holds_the_interpreter(
    tmp_path: Path,
) -> None:
    log = tmp_path / "api.log"
    log.write_text("a" * 41 + "b\n")
    # Not refused at load (alternatives that overlap), so the search's own limit ends it.
    attempt = probe("log", r"^(a|aa)+$", ProbeContext(log_path=log))
    progress = 0

    def count() -> None:
        nonlocal progress
        while thread_running.is_set():
            progress += 1

    thread_running = threading.Event()
    thread_running.set()
    counter = threading.Thread(target=count)
    counter.start()
    try:
        result = in_thread(attempt.check)  # type: ignore[attr-defined]
    finally:
        thread_running.clear()
        counter.join()
    assert isinstance(result, ProbeUnusable), result
    assert "backtracks" in result.cause and "simplify the pattern" in result.fix
    assert progress > 1000  # another thread (Ctrl-C's main thread) ran meanwhile


def test_a_big_log_is_read_in_bounded_chunks(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    with open(log, "w") as f:
        for n in range(3 * logscan.CHUNK // 64):
            f.write(f"noise line {n:08d} " + "-" * 43 + "\n")
    attempt = probe("log", r"^server ready$", ProbeContext(log_path=log))
    tracemalloc.start()
    try:
        for _ in range(3):  # three chunks of noise, each read once
            with pytest.raises(ProbeFailed, match="does not match"):
                attempt.check()  # type: ignore[attr-defined]
        with open(log, "a") as f:
            f.write("server ")  # a line written in two parts
        with pytest.raises(ProbeFailed):
            attempt.check()  # type: ignore[attr-defined]
        with open(log, "a") as f:
            f.write("ready\n")
        assert attempt.check() == {}  # type: ignore[attr-defined]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * logscan.CHUNK  # chunks and their text, never the whole log
    # A new, shorter log (a restart) is read from its start; a line start stays one.
    log.write_text("xserver ready\nserver ready\n")
    fresh = probe("log", r"^server ready$", ProbeContext(log_path=log))
    assert fresh.check() == {}  # type: ignore[attr-defined]
    log.write_text("x" * 10 + "server ready\n")
    with pytest.raises(ProbeFailed):
        fresh.check()  # type: ignore[attr-defined]


def test_a_command_probe_keeps_the_tail_of_its_output_and_leaves_nothing(
    tmp_path: Path, no_leaks: LeakCheck
) -> None:
    marker = tmp_path / "left"
    tracemalloc.start()
    try:
        spam = probe("command", argv=("yes",), ctx=ProbeContext(attempt_timeout=0.5))
        result = in_thread(spam.check)  # type: ignore[attr-defined]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(result, ProbeFailed) and "ran out of its 0.5s" in str(result)
    assert peak < 1 << 20
    # What it starts in the background goes with it (it ends when the command exits).
    script = f"sleep 300 & echo $! > {marker}; echo started"
    left = probe("command", argv=("/bin/sh", "-c", script))
    assert in_thread(left.check) == {}  # type: ignore[attr-defined]
    pid = int(marker.read_text())
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), what="its end")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
