"""The compose backend against an engine reached over TCP (DOCKER_HOST=tcp://...), as
when a suite points at a bigger machine: a second dockerd of the test's own, listening on
a loopback TCP port, with its own data, state, pidfile and socket. Probes go to the
engine's host; nothing is left on it afterwards; only that dockerd is stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers import IMAGE, ROOT, import_root_image, service

from conftest import Ports, Project


def _at(host: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "-H", host, *args], capture_output=True, text=True, check=False, timeout=60
    )


@pytest.fixture
def remote_engine(engine: str, free_ports: Ports) -> Iterator[str]:
    """tcp://127.0.0.1:<port> of a dockerd started here (vfs, no bridge, no iptables),
    stopped and its directories removed after the test."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.skip("no dockerd binary to start a second engine with")
    (port,) = free_ports(1)
    tag = os.urandom(3).hex()
    base = Path(tempfile.mkdtemp(prefix=f"pa-{tag}-", dir="/tmp"))  # short: socket paths
    host = f"tcp://127.0.0.1:{port}"
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115 (closed below)
    # its temp files (a containerd slow to stop under load dumps its stacks there) go
    # with its directories, not into the test's temp root, which must be left empty
    (base / "tmp").mkdir()
    process = subprocess.Popen(
        [
            dockerd,
            f"--data-root={base / 'data'}",
            f"--exec-root={base / 'x'}",
            f"--pidfile={base / 'dockerd.pid'}",
            f"--host=unix://{base / 'docker.sock'}",
            f"--host={host}",
            "--storage-driver=vfs",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            # a system containerd may be shared: our own namespaces in it
            f"--containerd-namespace=pa-{tag}",
            f"--containerd-plugins-namespace=pa-{tag}-plugins",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(base / "tmp")},
    )
    try:
        deadline = time.monotonic() + 60
        while _at(host, "info").returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (base / "dockerd.log").read_text(errors="replace")[-600:]
                pytest.skip(f"a second dockerd could not start: {tail}")
            time.sleep(0.1)
        import_root_image(IMAGE, host=host)
        yield host
        left = _at(host, "ps", "-aq").stdout.split()
        assert left == [], f"containers left on the remote engine: {left}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        for mount in _mounts_under(base):  # e.g. the netns file it bind-mounts
            subprocess.run(["umount", mount], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)
        assert not base.exists(), f"{base} could not be removed"


def _mounts_under(base: Path) -> list[str]:
    """Mount points below ``base`` (our dockerd's only), the deepest first."""
    points = [
        line.split()[4].replace("\\040", " ")
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ]
    return sorted((p for p in points if p.startswith(f"{base}/")), key=len, reverse=True)


def test_compose_backend_on_an_engine_reached_over_tcp(
    remote_engine: str, project: Project, free_ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a publishes its port on an ephemeral host port of the engine's host (on the
    project's own bridge network of this engine), read back from the engine; b runs on
    the host network, gated by its healthcheck run inside it."""
    (b,) = free_ports(1)
    monkeypatch.setenv("DOCKER_HOST", remote_engine)
    code = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{b}/health')"
    project.compose(
        f"""services:
  a:
    image: {IMAGE}
    volumes: ["/usr:/usr:ro", "{ROOT}:/app:ro"]
    environment: {{PYTHONPATH: /app}}
    command: ["/usr/bin/python3", "-m", "pytest_pyairtable.standin", "--name", "a",
              "--host", "0.0.0.0", "--port", "8080"]
    ports: ["127.0.0.1::8080"]"""
        + service(
            "b",
            f'\n    command: ["/usr/bin/python3", "-m", "pytest_pyairtable.standin", "--name", '
            f'"b", "--port", "{b}", "--startup-delay", "0.3"]\n'
            f'    healthcheck: {{test: ["CMD", "/usr/bin/python3", "-c", "{code}"], '
            "interval: 300s}\n"
            "    depends_on: {a: {condition: service_healthy}}",
        )
    )
    project.tests(f"""
        import os, subprocess
        import httpx

        def test_b(pyairtable_b, pyairtable_a):
            assert os.environ["DOCKER_HOST"] == {remote_engine!r}
            assert pyairtable_a.host == pyairtable_b.host == "127.0.0.1"  # the engine's host
            published = subprocess.run(
                ["docker", "-H", {remote_engine!r}, "ps", "-q",
                 "--filter", "label=com.docker.compose.service=a"],
                capture_output=True, text=True, check=True,
            ).stdout.split()
            assert len(published) == 1  # on the remote engine
            port = subprocess.run(
                ["docker", "-H", {remote_engine!r}, "port", published[0], "8080"],
                capture_output=True, text=True, check=True,
            ).stdout.split()[0].rpartition(":")[2]
            assert pyairtable_a.port == int(port) != 8080  # read back from the engine
            assert pyairtable_a.url == f"http://127.0.0.1:{{port}}"
            assert httpx.get(pyairtable_a.url + "/health").status_code == 200
            assert httpx.get("http://127.0.0.1:{b}/health").status_code == 200
    """)
    result = project.run("--pyairtable-backend", "compose")
    result.assert_outcomes(passed=1)
