"""The project's container events, followed for the whole run, survive the engine ending
the stream: Podman 4.3 ends every events stream when it rotates its events log (1 MB by
default; here made 6 KB, so a few containers' events rotate it). Each event is still
applied once: a container killed after several rotations is known to have died with
137, once, and started once."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest
from containers import IMAGE, import_root_image
from enginekit import PodmanService, start_podman

from pytest_pyairtable.backends.containerstates import ContainerStates
from pytest_pyairtable.backends.engines import connect, locate


@pytest.fixture
def rotating_podman() -> Iterator[PodmanService]:
    """A Podman service of this test's own whose events log rotates past 6 KB."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed; .ci/setup installs it")
    base = f"/tmp/pa-events-{os.getpid()}"
    os.makedirs(base, exist_ok=True)
    started = start_podman(
        f'events_logger = "file"\nevents_logfile_path = "{base}/events.log"\n'
        'events_logfile_max_size = "6k"'
    )
    if isinstance(started, str):
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(started)
    try:
        if started.docker("image", "inspect", IMAGE).returncode != 0:
            import_root_image(IMAGE, host=started.host)
        yield started
    finally:
        started.stop()
        shutil.rmtree(base, ignore_errors=True)


def run(podman: PodmanService, *args: str) -> str:
    done = podman.docker(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_death_after_the_engine_ended_the_stream_is_seen_once(
    rotating_podman: PodmanService, monkeypatch: pytest.MonkeyPatch
) -> None:
    podman = rotating_podman
    monkeypatch.setenv("DOCKER_HOST", podman.host)
    api, engine = connect(locate())
    project = f"events-{os.getpid()}-{os.urandom(3).hex()}"
    states = ContainerStates(api, project, engine)
    cid = ""
    try:
        cid = run(
            podman, "run", "-d", "--network", "host", "-v", "/usr:/usr:ro",
            "--label", f"com.docker.compose.project={project}",
            "--label", "com.docker.compose.service=a",
            IMAGE, "/usr/bin/sleep", "120",
        )  # fmt: skip
        assert states.await_start(cid, 0, timeout=30)
        for _ in range(8):  # another project's containers: their events rotate the log
            run(podman, "run", "--rm", "-v", "/usr:/usr:ro", IMAGE, "/usr/bin/true")
        run(podman, "kill", cid)
        deadline = time.monotonic() + 30
        while states.exit_code(cid) is None and time.monotonic() < deadline:
            states.wait_exit(cid, 0.5)
        assert states.subscriptions >= 2, "the engine never ended the stream (no rotation)"
        assert states.known(cid), "the events stream ended with the engine's rotation"
        assert states.exit_code(cid) == 137
        assert states.starts(cid) == 1
        assert states.history(cid)[1] == [137]
    finally:
        states.close()
        if cid:
            podman.docker("rm", "-f", cid)
        api.close()


class Replaying:
    """An engine's events API that ends its first stream and, asked again from that
    second, sends its events again before the new one (Podman's replay from ``since``):
    a stream end that no engine here produces on demand, made as the engine makes it."""

    def __init__(self, streams: list[list[dict[str, object]]]) -> None:
        self.streams = streams
        self.asked: list[object] = []

    def events(self, since: object, filters: object, decode: bool) -> Iterator[object]:
        self.asked.append(since)
        if not self.streams:
            raise ConnectionError("the engine is gone")
        return iter(self.streams.pop(0))


def _event(action: str, nanos: int, **attributes: str) -> dict[str, object]:
    return {"Action": action, "timeNano": nanos, "Actor": {"ID": "c1", "Attributes": attributes}}


def test_a_replayed_event_is_applied_once() -> None:
    from pytest_pyairtable.backends.engines import Engine, Location

    second = 1_800_000_000
    start = _event("start", second * 10**9 + 5)
    die = _event("die", second * 10**9 + 7, exitCode="137")
    engine = Engine("Docker", "0", "1.41", Location("unix:///nowhere", "a test"))
    replaying = Replaying([[start], [start, die]])
    states = ContainerStates(None, "p", engine, replaying)
    try:
        assert states.wait_exit("c1", 10) == 137
        assert states.starts("c1") == 1 and states.history("c1")[1] == [137]
        assert replaying.asked[1] == second  # asked again from the last event's second
    finally:
        states.close()
