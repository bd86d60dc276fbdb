"""A volley of a healthcheck's runs around its port's foreseen opening (healthvolley.py),
run for real: a container's kept shell, a port this test opens when it chooses, a check
that takes a while before it connects (as an interpreter's start-up does)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from containers import docker_cli, sleeping_container

from pytest_pyairtable.backends.execsession import ShellSession
from pytest_pyairtable.backends.healthgate import PortGate
from pytest_pyairtable.backends.healthvolley import run_volley
from pytest_pyairtable.backends.readyforecast import VOLLEY_SLOTS, Forecast
from pytest_pyairtable.probes.waiting import WATCH_EVERY

# openings foreseen 0.1 s apart, a run costing 50 ms: 6 runs, one every 25 ms
FORECAST = Forecast(opens_after=0.3, cost=0.05, spread=0.1)


@pytest.fixture
def shell(engine: str) -> Iterator[ShellSession]:
    from pytest_pyairtable.backends.engines import connect

    cid = sleeping_container()
    api, _ = connect()
    session = ShellSession(api, cid, "/bin/sh", 10)
    try:
        yield session
    finally:
        session.close()
        docker_cli("rm", "-f", cid)
        api.close()


@pytest.fixture
def port() -> Iterator[Any]:
    """A port of this machine's loopback, refusing until ``open`` (a listener then)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))

    class Port:
        number = listener.getsockname()[1]
        opened_at: float | None = None

        def open(self) -> None:
            listener.listen(64)
            self.opened_at = time.monotonic()

    try:
        yield Port()
    finally:
        listener.close()


class Looks(PortGate):
    """A port gate that counts its looks."""

    looks = 0

    def open_now(self) -> bool:
        self.looks += 1
        return super().open_now()


def check(port: int, start_up: float = 0.04) -> str:
    """Connects after its start-up, as an interpreter's imports delay a check's connection."""
    return f"/usr/bin/bash -c '/usr/bin/sleep {start_up}; : >/dev/tcp/127.0.0.1/{port}'"


class OpensAtRun:
    """The kept shell, the port opened once its ``nth`` run has started and a run has
    failed (connected before the opening): inside the volley's window whatever the
    machine's load."""

    def __init__(self, session: ShellSession, port: Any, nth: int) -> None:
        self.session, self.port, self.nth, self.runs = session, port, nth, 0
        self.failed = False

    def launch(self, command: str) -> int:
        tag = self.session.launch(command)
        self.runs += 1
        self._maybe_open()
        return tag

    def ended(self, wait: float) -> dict[int, int]:
        codes = self.session.ended(wait)
        self.failed = self.failed or any(code != 0 for code in codes.values())
        self._maybe_open()
        return codes

    def _maybe_open(self) -> None:
        if self.runs >= self.nth and self.failed and self.port.opened_at is None:
            self.port.open()


def test_whenever_the_port_opens_a_run_begun_before_it_connects_after_it(
    shell: ShellSession, port: Any
) -> None:
    gate = PortGate(("127.0.0.1", port.number))
    session = cast(ShellSession, OpensAtRun(shell, port, nth=3))  # 50 ms in, or later
    volley = run_volley(session, gate, check(port.number), FORECAST, timeout=10, slots=None)
    assert port.opened_at is not None
    assert volley.code == 0, volley
    # the run that passed began before the port opened: not the gate's run at the opening
    assert volley.pass_began < port.opened_at - 0.001, (volley, port.opened_at)
    # the first connected before the opening and failed: the check does not wait inside
    assert volley.failed_early and 3 <= volley.runs <= FORECAST.volley()[2] + 1, volley
    assert gate.opened_at is not None and gate.opened_at >= port.opened_at


def test_a_volley_whose_port_never_opens_runs_its_bound_and_fails(
    shell: ShellSession, port: Any
) -> None:
    gate = Looks(("127.0.0.1", port.number))
    began = time.monotonic()
    volley = run_volley(shell, gate, check(port.number), FORECAST, timeout=10, slots=None)
    assert volley.code != 0 and volley.runs == FORECAST.volley()[2], volley
    assert gate.opened_at is None and not shell.launched
    # looked at every WATCH_EVERY, never faster, while the last runs went on
    took = time.monotonic() - began
    assert gate.looks <= took / WATCH_EVERY + 50, gate.looks


def test_with_every_slot_held_by_other_volleys_only_the_run_at_the_opening_starts(
    shell: ShellSession, port: Any
) -> None:
    slots = threading.BoundedSemaphore(VOLLEY_SLOTS)
    for _ in range(VOLLEY_SLOTS):
        assert slots.acquire(blocking=False)
    gate = PortGate(("127.0.0.1", port.number))
    refused = run_volley(shell, gate, check(port.number), FORECAST, timeout=10, slots=slots)
    assert refused.runs == 0, refused  # nothing ran: the gate's refusal follows
    port.open()
    at_opening = run_volley(shell, gate, check(port.number), FORECAST, timeout=10, slots=slots)
    assert at_opening.code == 0 and at_opening.runs == 1, at_opening
    assert not slots.acquire(blocking=False)  # it took none (nor gave back one)


class OpensAtRefusal(threading.BoundedSemaphore):
    """The backend's slots, the port opened at the third run they refuse."""

    def __init__(self, port: Any) -> None:
        super().__init__(VOLLEY_SLOTS)
        self.port, self.refused = port, 0

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        taken = super().acquire(blocking, timeout)
        self.refused += not taken
        if self.refused == 3 and self.port.opened_at is None:
            self.port.open()
        return taken


def test_the_runs_ahead_take_the_backends_slots_and_give_every_one_back(
    shell: ShellSession, port: Any
) -> None:
    """Runs far slower than foreseen: the first VOLLEY_SLOTS hold every slot (the next
    are not started) and still run when the first passes; their slots come back too."""
    slots = OpensAtRefusal(port)
    gate = PortGate(("127.0.0.1", port.number))
    slow = check(port.number, start_up=0.4)  # long after the opening, each run connects
    volley = run_volley(shell, gate, slow, FORECAST, timeout=10, slots=slots)
    assert port.opened_at is not None
    # those, and the run at the opening (the gate's own: it takes no slot)
    assert volley.code == 0 and volley.runs == VOLLEY_SLOTS + 1, volley
    assert not volley.failed_early, volley
    assert shell.launched, "the later runs were still going"
    assert all(slots.acquire(blocking=False) for _ in range(VOLLEY_SLOTS))
