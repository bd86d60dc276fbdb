"""The pause between readiness attempts: a port watch ends it the moment the port
starts to accept, and stopping waits on the kernel's word that a process exited.

The policy is tested with an injected sleep (nothing sleeps); the watch and the stopper
against real sockets and real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import unique_run_id, wait_until
from pytest_pyairtable.backends import stopper
from pytest_pyairtable.backends.process import LocalProcess
from pytest_pyairtable.backends.procfs import markers, proc_start_time
from pytest_pyairtable.probes.checks import ProbeFailed
from pytest_pyairtable.probes.waiting import (
    FIRST_WAIT,
    WATCH_EVERY,
    PortWatch,
    port_watch,
    wait_ready,
)


class Probe:
    """Fails until ``ready()`` says otherwise; counts its attempts."""

    def __init__(self, ready: Callable[[], bool]) -> None:
        self.ready = ready
        self.calls = 0
        self.extra_budget = 0.0

    def check(self) -> dict[str, object]:
        self.calls += 1
        if not self.ready():
            raise ProbeFailed("not yet")
        return {}

    def close(self) -> None:
        pass


class Flips:
    """A watch that changes at its ``at``-th look, once; notes how much was slept then."""

    def __init__(self, at: int, sleeps: list[float]) -> None:
        self.at = at
        self.looks = 0
        self.sleeps = sleeps
        self.slept_before: int | None = None

    def changed(self) -> bool:
        self.looks += 1
        if self.looks == self.at:
            self.slept_before = len(self.sleeps)
            return True
        return False


def test_the_watch_ends_a_pause_at_once() -> None:
    sleeps: list[float] = []
    watch = Flips(400, sleeps)
    probe = Probe(lambda: watch.slept_before is not None)
    wait_ready(probe, budget=60, cap=0.05, sleep=sleeps.append, watch=watch)
    assert watch.slept_before is not None
    assert len(sleeps) == watch.slept_before  # the passing attempt came with no more sleep
    assert all(s <= WATCH_EVERY + 1e-12 for s in sleeps)  # pauses are looked at every 1 ms
    assert sum(sleeps) == pytest.approx(0.399)  # what the watch was looked at over


def test_after_the_watch_fires_the_backoff_starts_again_from_the_first_wait() -> None:
    """An open port whose probe still fails: the next pauses are 1, 2, 4 ms, not the cap."""
    sleeps: list[float] = []
    watch = Flips(100, sleeps)
    calls_then: list[int] = []

    def ready() -> bool:
        if watch.slept_before is not None and not calls_then:
            calls_then.append(probe.calls)
        return bool(calls_then) and probe.calls >= calls_then[0] + 3

    probe = Probe(ready)
    wait_ready(probe, budget=60, cap=0.05, sleep=sleeps.append, watch=watch)
    assert watch.slept_before is not None
    after = sleeps[watch.slept_before :]
    assert sum(after) == pytest.approx(FIRST_WAIT * (1 + 2 + 4))
    assert probe.calls == calls_then[0] + 3


def test_port_watch_sees_a_port_start_to_accept() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        watch = PortWatch(("127.0.0.1", port))
        assert not watch.changed()  # bound, not listening: refused
        holder.listen()
        assert watch.changed()
        assert not watch.changed()  # once per change


@pytest.mark.parametrize(
    ("kind", "target", "expected"),
    [
        ("http", "http://127.0.0.1:8000/health", ("127.0.0.1", 8000)),
        ("http", "http://localhost/health", ("127.0.0.1", 80)),
        ("postgres", "postgresql://u:p@127.0.0.1:5432/db", ("127.0.0.1", 5432)),
        ("redis", "redis://:pw@[::1]:6379/0", ("::1", 6379)),
        ("tcp", "127.0.0.1:9000", ("127.0.0.1", 9000)),
        ("postgres", "postgresql://u@localhost/db", ("127.0.0.1", 5432)),
        ("http", "http://10.1.2.3:8000/health", None),  # remote: not polled every ms
        ("command", "", None),
        ("log", "ready", None),
    ],
)
def test_port_watch_only_for_ports_on_this_machine(
    kind: str, target: str, expected: tuple[str, int] | None
) -> None:
    watch = port_watch(kind, target)
    assert (watch.address if watch else None) == expected


def test_stopping_waits_for_a_graceful_exit_and_collects_it() -> None:
    """A process that exits 0.2 s after SIGTERM ran its handler (no SIGKILL came) and is
    reaped once the stop returns."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(0.2), exit(0)))\n"
            "print('up', flush=True)\n"
            "for _ in range(1200): time.sleep(0.05)\n",  # a handler waits out a sleep
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert child.stdout is not None and child.stdout.readline() == b"up\n"
    child.stdout.close()
    target = stopper.Target("watch-test", "svc", child.pid, proc_start_time(child.pid))
    left = stopper.end([target], signal.SIGTERM, 10, reap=child.poll)
    assert left == {}
    assert child.poll() == 0  # graceful: it ran its handler, no SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(child.pid, 0)


# Eight threads beside the main one: after SIGKILL the main thread often ends before the
# others and shows as a zombie while they still exit (about half the time, measured).
THREADED = (
    "import threading, time\n"
    "for _ in range(8): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    "print('up', flush=True)\n"
    "time.sleep(60)\n"
)
ROUNDS = 20  # with the race back, all of them passing is a 1-in-100,000 chance


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


def test_a_killed_process_is_gone_only_once_all_its_threads_are() -> None:
    """Until its threads have exited, its parent cannot collect it: a stop that returned
    earlier left a poll saying "still running" (a fault test's heal then skipped the
    restart of the service it had killed)."""
    for _ in range(ROUNDS):
        child = subprocess.Popen(
            [sys.executable, "-S", "-c", THREADED], stdout=subprocess.PIPE, start_new_session=True
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == b"up\n"
            child.stdout.close()
            target = stopper.Target("threads-test", "svc", child.pid, proc_start_time(child.pid))
            assert stopper.end([target], signal.SIGKILL, 0) == {}  # no reap: it stays a zombie
            assert _threads(child.pid) <= 1  # the leader's zombie, and nothing else
        finally:
            child.kill()
            child.wait()


def test_a_service_stop_returns_its_exit_status(tmp_path: Path) -> None:
    """The stop of a service we launched collects its exit status before it returns."""
    log = tmp_path / "svc.log"
    for _ in range(ROUNDS):
        process = LocalProcess(
            "svc",
            [sys.executable, "-S", "-c", THREADED],
            env=dict(os.environ),
            cwd=tmp_path,
            log_path=log,
            run_id=unique_run_id("threads"),
        )
        try:
            wait_until(lambda: log.read_text().count("up") > 0, what="the service's threads")
            assert process.stop(signal.SIGKILL, 0) == -signal.SIGKILL
        finally:
            process.popen.kill()
            process.popen.wait()
        log.write_text("")


def test_the_scan_skips_processes_older_than_the_group_leader() -> None:
    """Whatever carries a service's marker descends from its leader: an older process
    with the same marker is not the service's (it cannot be), and is left alone."""
    env = {**os.environ, "PYAIRTABLE_RUN_ID": "older-test", "PYAIRTABLE_SERVICE": "svc"}
    older = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    leader: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(0.05)  # start ticks are 10 ms apart at most; be clearly later
        wait_until(lambda: markers(older.pid) is not None, what="the older one's environment")
        leader = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True
        )
        # Popen returns once exec has begun; /proc/PID/environ is empty until the kernel
        # has set the new program's environment up (a scan then finds no marker).
        wait_until(lambda: markers(leader.pid) is not None, what="the leader's environment")
        ticks = proc_start_time(leader.pid)
        older_ticks = proc_start_time(older.pid)
        assert ticks is not None and older_ticks is not None
        if older_ticks >= ticks:
            pytest.skip("both started within one clock tick")
        found = stopper.find([stopper.Target("older-test", "svc", leader.pid, ticks)])
        assert leader.pid in found and older.pid not in found
        # the whole run's target (no leader known) still finds both: the reaper's view
        everything = stopper.find([stopper.Target("older-test")])
        assert {leader.pid, older.pid} <= set(everything)
    finally:
        for child in (older, leader):
            if child is not None:  # also when an assert failed: never outlive the test
                child.kill()
                child.wait()


def test_exits_are_awaited_on_pidfds_that_the_kernel_wakes() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    ticks = proc_start_time(child.pid)
    assert ticks is not None
    fds = stopper._pidfds({child.pid: ticks})
    if fds is None:
        child.kill()
        child.wait()
        pytest.skip("this kernel has no pidfd_open: stopping polls instead")
    try:
        assert len(fds) == 1
        assert stopper._pidfds({child.pid: ticks + 1}) == []  # another process's start time
        started = time.monotonic()
        assert child.stdin is not None
        child.stdin.close()  # it exits now
        stopper._await_pidfds(fds, started + 30)
        assert child.poll() is not None  # woken because it exited, not by the deadline
    finally:
        for fd in fds:
            os.close(fd)


def test_a_probe_failing_thousands_of_times_keeps_its_capped_pause() -> None:
    """The doubling pause is capped; past ~1024 attempts its exponent would overflow a
    float (a service whose probe can never pass, e.g. a wrong port, until its budget)."""
    probe = Probe(lambda: probe.calls > 1500)
    slept: list[float] = []
    wait_ready(probe, budget=3600, cap=0.05, sleep=slept.append)
    assert probe.calls == 1501
    assert max(slept) == 0.05 and slept[-1] == 0.05


def test_each_process_gets_the_stop_signal_once(tmp_path: Path) -> None:
    """The group's signal reaches its leader: no second one to the leader by its PID. A
    second SIGTERM is another request to many servers, and enters a handler still at
    work on the first (coverage's, saving its data, broke the file it was writing)."""
    seen = tmp_path / "signals"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "def handler(*a):\n"
            f"    open({str(seen)!r}, 'a').write('TERM\\n')\n"
            "    time.sleep(0.3)\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, handler)\n"
            "print('up', flush=True)\n"
            "for _ in range(1200): time.sleep(0.05)\n",  # a handler waits out a sleep
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert child.stdout is not None and child.stdout.readline() == b"up\n"
    child.stdout.close()
    target = stopper.Target("once-test", "svc", child.pid, proc_start_time(child.pid))
    assert stopper.end([target], signal.SIGTERM, 10, reap=child.poll) == {}
    assert child.poll() == 0
    assert seen.read_text() == "TERM\n"
