"""A long-lived stream of the Engine API (a followed log, the project's events) that its
follower closed before the engine answered is released as soon as the answer comes: its
connection's fd closed then, not left to the garbage collector (whose collection of it
warned, ``unclosed <socket.socket [closed] ...>``, in whichever later test it ran in).

The engine's late answer is made here by holding the request back: under load the
stream's thread is what is late, ~20 ms after its answer a run may close it."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from containers import IMAGE, docker_cli

from pytest_pyairtable.backends.containerstates import ContainerStates
from pytest_pyairtable.backends.dockerapi import LogFollower
from pytest_pyairtable.backends.engines import Engine, connect, stream_client


@pytest.fixture
def clients(engine: str) -> Iterator[tuple[Any, Any, Engine]]:
    """The request client, the client of long-lived streams (as the compose backend
    makes them), and the engine."""
    api, found = connect()
    streams = stream_client(api, found)
    try:
        yield api, streams, found
    finally:
        streams.close()
        api.close()


@pytest.fixture
def talker(engine: str) -> Iterator[str]:
    """A container that prints a line every 50 ms."""
    name = f"pyairtable-streams-{os.getpid()}-{secrets.token_hex(3)}"
    started = docker_cli(
        "run", "-d", "--name", name, "--network", "host", "-v", "/usr:/usr:ro", IMAGE,
        "/bin/sh", "-c", "while true; do echo tick; sleep 0.05; done",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield started.stdout.strip()
    finally:
        docker_cli("rm", "-f", name)


class HeldBack:
    """The streams client, answering a stream's request only once ``answer`` is set (an
    engine, or a thread, that is late); what it answered is kept, with its connection."""

    def __init__(self, streams: Any) -> None:
        self.streams = streams
        self.answer = threading.Event()
        self.connections: list[tuple[int, str]] = []

    def __getattr__(self, name: str) -> Any:  # its other calls, as they are
        return getattr(self.streams, name)

    def logs(self, *args: Any, **kwargs: Any) -> Any:
        self.answer.wait(30)
        return self._kept(self.streams.logs(*args, **kwargs))

    def events(self, *args: Any, **kwargs: Any) -> Any:
        self.answer.wait(30)
        return self._kept(self.streams.events(*args, **kwargs))

    def _kept(self, stream: Any) -> Any:
        sdk = getattr(stream, "stream", stream)  # the SDK's own stream
        fd = sdk._response.raw._fp.fp.raw._sock.fileno()  # its connection
        self.connections.append((fd, os.readlink(f"/proc/self/fd/{fd}")))
        return stream


def still_open(connection: tuple[int, str]) -> bool:
    fd, what = connection
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == what  # (not another file on that fd)
    except OSError:
        return False


def test_a_log_follower_closed_before_the_engine_answered_releases_the_stream(
    clients: tuple[Any, Any, Engine], talker: str, tmp_path: Path
) -> None:
    _, streams, _ = clients
    late = HeldBack(streams)
    follower = LogFollower(late, talker, tmp_path / "talker.log")
    follower.close()  # the run's end, while the request is unanswered
    late.answer.set()
    follower.join(10)
    assert not follower._thread.is_alive()
    assert len(late.connections) == 1
    assert not still_open(late.connections[0])


def test_a_log_follower_closed_while_it_follows_releases_the_stream(
    clients: tuple[Any, Any, Engine], talker: str, tmp_path: Path
) -> None:
    _, streams, _ = clients
    seen = HeldBack(streams)
    seen.answer.set()
    log = tmp_path / "talker.log"
    follower = LogFollower(seen, talker, log)
    try:
        follower.catch_up(10)
    finally:
        follower.close()
    assert not follower._thread.is_alive()
    assert "tick" in log.read_text()
    assert seen.connections and not any(still_open(c) for c in seen.connections)


def test_events_closed_before_the_engine_answered_release_the_stream(
    clients: tuple[Any, Any, Engine],
) -> None:
    api, streams, found = clients
    late = HeldBack(streams)
    states = ContainerStates(api, f"pyairtable-streams-{secrets.token_hex(3)}", found, late)
    states.close()  # the run's end, while the subscription is unanswered
    late.answer.set()
    states._thread.join(10)
    assert not states._thread.is_alive()
    assert len(late.connections) == 1
    assert not still_open(late.connections[0])
