"""The lease table, with real threads: who may use the stack, in what order, and the
ways out (timeout, a holder that goes away). Waiting is observed through the table's
own ``waiting()``, never by sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_pyairtable.session.lease import EXCLUSIVE, SHARED, HolderGone, LeaseTable, LeaseTimeout


def until(predicate: Callable[[], Any], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class Worker:
    """A thread asking the table for a lease, as a server thread does for a worker."""

    def __init__(self, table: LeaseTable, holder: str, mode: str, **kwargs: Any) -> None:
        self.error: BaseException | None = None
        self.got = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(table, holder, mode, kwargs), daemon=True
        )
        self.thread.start()

    def _run(self, table: LeaseTable, holder: str, mode: str, kwargs: dict[str, Any]) -> None:
        try:
            table.acquire(holder, mode, f"{holder} test", **kwargs)
            self.got.set()
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def table() -> Iterator[LeaseTable]:
    yield LeaseTable(timeout=30)


def test_shared_holders_coexist_and_exclusive_waits_for_all_of_them(table: LeaseTable) -> None:
    table.acquire("a", SHARED, "a")
    table.acquire("b", SHARED, "b")
    fault = Worker(table, "f", EXCLUSIVE)
    until(lambda: table.waiting() == {"f": EXCLUSIVE})
    table.release("a")
    assert not fault.got.wait(0.05) and table.waiting() == {"f": EXCLUSIVE}  # b still holds
    table.release("b")
    fault.join()
    assert table.holders() == {"f": EXCLUSIVE}


def test_a_queued_exclusive_holds_back_new_shared_requests(table: LeaseTable) -> None:
    """Else a stream of ordinary tests on other workers would starve a fault test."""
    table.acquire("a", SHARED, "a")
    fault = Worker(table, "f", EXCLUSIVE)
    until(lambda: "f" in table.waiting())
    late = Worker(table, "b", SHARED)
    until(lambda: "b" in table.waiting())
    table.release("a")
    fault.join()
    assert table.waiting() == {"b": SHARED} and table.holders() == {"f": EXCLUSIVE}
    table.release("f")  # the heal is done
    late.join()
    assert table.holders() == {"b": SHARED}


def test_two_shared_holders_upgrading_at_once_do_not_deadlock(table: LeaseTable) -> None:
    table.acquire("a", SHARED, "a")
    table.acquire("b", SHARED, "b")
    first = Worker(table, "a", EXCLUSIVE)  # each gives its shared lease up first
    until(lambda: "a" in table.waiting())
    second = Worker(table, "b", EXCLUSIVE)
    first.join()
    assert table.holders() == {"a": EXCLUSIVE} and table.waiting() == {"b": EXCLUSIVE}
    table.release("a")
    second.join()
    assert table.holders() == {"b": EXCLUSIVE}


def test_a_holder_asking_again_keeps_what_it_has(table: LeaseTable) -> None:
    """A test holding the stack that requests one more fixture must not queue behind a
    fault test waiting for that very test: that would be a deadlock."""
    table.acquire("a", SHARED, "a")
    fault = Worker(table, "f", EXCLUSIVE)
    until(lambda: "f" in table.waiting())
    table.acquire("a", SHARED, "a")  # returns at once
    table.release("a")
    fault.join()
    table.acquire("f", SHARED, "f")  # exclusive covers shared
    assert table.holders() == {"f": EXCLUSIVE}


def test_downgrade_lets_shared_waiters_in_at_once(table: LeaseTable) -> None:
    table.acquire("r", EXCLUSIVE, "r")
    other = Worker(table, "a", SHARED)
    until(lambda: "a" in table.waiting())
    table.downgrade("r")
    other.join()
    assert table.holders() == {"r": SHARED, "a": SHARED}


def test_timeout_names_who_holds_the_stack() -> None:
    table = LeaseTable(timeout=0.2)
    table.acquire("gw1", SHARED, "gw1 tests/test_a.py::test_slow")
    with pytest.raises(LeaseTimeout) as info:
        table.acquire("gw2", EXCLUSIVE, "gw2 tests/test_b.py::test_fault")
    text = str(info.value)
    assert "gw2 tests/test_b.py::test_fault waited 0s for the stack alone" in text
    assert "held by: gw1 tests/test_a.py::test_slow (shared, for 0s)" in text
    assert "--pyairtable-lease-timeout" in text
    assert table.waiting() == {} and table.holders() == {"gw1": SHARED}
    table.acquire("gw3", SHARED, "gw3")  # the timed-out request holds nothing back


def test_a_waiter_that_goes_away_stops_waiting(table: LeaseTable) -> None:
    table.acquire("a", EXCLUSIVE, "a")
    gone = threading.Event()
    waiter = Worker(table, "b", SHARED, gone=gone.is_set)
    until(lambda: "b" in table.waiting())
    gone.set()
    waiter.join()
    assert isinstance(waiter.error, HolderGone)
    assert table.waiting() == {} and table.holders() == {"a": EXCLUSIVE}


def test_unknown_mode_is_refused(table: LeaseTable) -> None:
    with pytest.raises(Exception, match="unknown lease mode 'alone'"):
        table.acquire("a", "alone", "a")
