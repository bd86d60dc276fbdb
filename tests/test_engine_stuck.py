"""An engine that stops answering at a run's end (as Docker before 20.10.27 does when
its network code deadlocks as containers exit, moby/moby#46661): the run says which
call, which engine, what is left and how to clear it, not the HTTP client's read
timeout. A deadlocked engine cannot be made on demand, so a proxy in front of the real
one stops passing on the call that lists the project's containers."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers import IMAGE, ROOT, docker_cli

from pytest_pyairtable.backends import engines, markers
from pytest_pyairtable.backends.compose import ComposeBackend
from pytest_pyairtable.backends.composedetect import detect_compose
from pytest_pyairtable.backends.engines import EngineCallError, Location
from pytest_pyairtable.engine.orchestrator import Orchestrator
from pytest_pyairtable.model.spec import load_stack


class StallingProxy:
    """Each connection's bytes passed to the engine's socket and back, except that
    once ``stall`` is set, a request whose first line holds it is never passed on."""

    def __init__(self, path: Path, engine_socket: str) -> None:
        self.path, self.engine_socket = path, engine_socket
        self.stall: bytes | None = None
        self.stalled = threading.Event()
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(64)
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:  # shut: the test is over
                return
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(self.engine_socket)
            except OSError:  # the engine refused this one connection: only it ends
                client.close()
                upstream.close()
                continue
            self.open += [client, upstream]
            for pair in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=pair, daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if requests and self.stall is not None and self.stall in data.split(b"\r\n")[0]:
                    self.stalled.set()
                    return  # the engine never hears of it; the caller waits for an answer
                sink.sendall(data)
        with contextlib.suppress(OSError):  # its end, passed on
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for sock in (self.server, *self.open):  # (a shutdown wakes a blocked accept, recv)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def proxy(engine: str, tmp_path: Path) -> Iterator[StallingProxy]:
    location = engines.locate()
    found = engines.probe_engine(location)
    if not location.url.startswith("unix://") or found is None or found.podman:
        pytest.skip(f"a Docker engine on a unix socket, not {location.describe()}")
    stalling = StallingProxy(tmp_path / "engine.sock", location.url.removeprefix("unix://"))
    try:
        yield stalling
    finally:
        stalling.close()


def test_an_engine_that_stops_answering_at_the_end_is_named_with_what_is_left(
    proxy: StallingProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{proxy.path}")
    file = tmp_path / "docker-compose.yml"
    file.write_text(
        "services:\n"
        f"  a: {{image: {IMAGE}, network_mode: host, command: [/usr/bin/sleep, '300'],\n"
        "      stop_grace_period: 0s,\n"
        f'      volumes: ["/usr:/usr:ro", "{ROOT}:/app:ro"]}}\n'
    )
    command, _ = detect_compose()
    backend = ComposeBackend(
        run_id=f"{os.getpid()}-{os.urandom(3).hex()}",
        compose_file=file,
        compose_command=" ".join(command),
    )
    orch = Orchestrator(load_stack(file), backend)
    try:
        orch.start(["a"])
        orch.wait("a")
        backend.api.timeout = 2.0  # each call's deadline from now on (the run's is a minute)
        proxy.stall = b"/containers/json"  # what the removal asks first
        with pytest.raises(EngineCallError) as raised:
            orch.stop()
        assert proxy.stalled.is_set()
    finally:
        proxy.stall = None
        label = f"label=com.docker.compose.project={backend.project}"
        left = docker_cli("ps", "-aq", "--filter", label).stdout.split()
        if left:
            docker_cli("rm", "-f", *left)
        markers.remove_dir(backend.run_dir, backend.run_id)  # kept for the later run
    said = str(raised.value)
    assert said.startswith(f"removing the run's project {backend.project}: Docker "), said
    assert "timed out" in said.lower(), said
    assert f"its containers are left: a later run of this stack removes them, as does " \
        f"`docker compose -p {backend.project} down`" in said, said  # fmt: skip
    assert "restart it if it does not" in said, said
    assert backend.engine is not None and backend.engine.exit_deadlock in said, said
    # an engine with the deadlock is named so before it happens, in the run's summary
    warned = f"engine: {backend.engine.exit_deadlock}" in backend.notices
    assert warned == bool(backend.engine.exit_deadlock), backend.notices
    assert left, "the containers the message says are left"


def test_only_docker_engines_before_the_fix_are_said_to_deadlock_on_exits() -> None:
    at = Location("unix:///x", "test")
    old = engines.Engine("Docker", "20.10.24+dfsg1", "1.41", at)
    assert "moby/moby#46661" in old.exit_deadlock and "20.10.24+dfsg1" in old.exit_deadlock
    assert engines.Engine("Docker", "19.03.15", "1.40", at).exit_deadlock
    for fixed in ("20.10.27", "23.0.0", "28.1.1"):
        assert engines.Engine("Docker", fixed, "1.41", at).exit_deadlock == "", fixed
    assert engines.Engine("Podman", "4.3.1", "1.41", at).exit_deadlock == ""
    assert engines.Engine("Docker", "unknown", "1.41", at).exit_deadlock == ""
