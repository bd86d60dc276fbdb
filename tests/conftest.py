"""Shared test fixtures and helpers. A test module imports helpers from here or from the
helper modules beside it, never from another test module:

- leakcheck.py: the leak check every test runs inside (``no_leaks`` below);
- stackrun.py: the CLI and pytest as subprocesses, deadlines, stand-in services;
- containers.py: the Docker engine's test image, this run's containers, compose services;
- teamrepo.py, faultcases.py, hostile_cases.py, devstack_file.py: generated projects,
  inner test files and input cases several test modules share;
- compose_reference.py: `docker compose config` as the reference for compose semantics.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpcore  # noqa: F401
import httpx  # noqa: F401
import psycopg  # noqa: F401
import pytest
import redis  # noqa: F401
from containers import IMAGE, docker_cli, import_root_image, our_containers
from enginekit import PodmanService, Registry, start_podman, start_registry
from leakcheck import LeakCheck, leak_checked
from stackrun import PYTEST_ARGS, free_port, hold_free_ports, listening

from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.engine.orchestrator import Handle, Orchestrator
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.session.ports import PortHolds

# The client libraries are imported here, before any in-process pytester run: pytester
# drops modules first imported inside a run, and psycopg's C extension then raises
# exception classes of the dropped module that a fresh import no longer catches (httpx
# likewise maps httpcore's exceptions by the classes it saw first).

Ports = Callable[[int], list[int]]  # the free_ports fixture: count -> that many free ports


def unique_run_id(label: str) -> str:
    """A run id no concurrent run shares (fixed ids made two runs' files look alike)."""
    return f"{os.getpid()}-{label}-{secrets.token_hex(3)}"


def wait_until(
    condition: Callable[[], object], timeout: float = 30, what: str = "condition"
) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.01)


@pytest.fixture(scope="session", autouse=True)
def children_see_a_plain_run() -> Iterator[None]:
    """The suite runs under xdist, and a worker's PYTEST_XDIST_* variables would reach
    every pytest a test starts: that pytest would think itself a worker of ours (its
    plugins do: pytest-benchmark turns itself off with a warning, an error under -W
    error), so the tests' children get the environment of a plain run. So do the
    variables our own plugin hands each worker of this suite: it finds the repo's dev
    stack (docker-compose.yml) and gives each worker its own databases' URLs, which
    stand-ins started here would read and depend on."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            patch.delenv(name, raising=False)
        handed = os.environ.get("PYAIRTABLE_WORKER_VARS", "").split(",")
        for name in ["PYAIRTABLE_WORKER_SLOT", "PYAIRTABLE_WORKER_VARS", *handed]:
            if name:
                patch.delenv(name, raising=False)
        yield


@pytest.fixture(autouse=True)
def no_leaks(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LeakCheck]:
    tmp_path_factory.getbasetemp()  # settled before TMPDIR points at the test's root
    with leak_checked(monkeypatch) as check:
        yield check


Background = Callable[..., "subprocess.Popen[bytes]"]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def background() -> Iterator[Background]:
    """Starts a command in the background (``subprocess.Popen`` arguments), e.g. a pytest
    to interrupt or kill; one still running after the test is killed, even if the test
    failed before it got to it (we hold its Popen: it is ours)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        # Ctrl-C must reach it even when we were started in the background by a shell
        # without job control, which ignores SIGINT for us and so for our children.
        kwargs.setdefault("preexec_fn", _default_sigint)
        proc: subprocess.Popen[bytes] = subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        with proc:  # closes its pipes and waits for it
            pass


@pytest.fixture
def free_ports() -> Iterator[Ports]:
    """Hands out unused loopback ports (stackrun.hold_free_ports: locked until the test
    ends); checks after the test that none is still taken."""
    held: list[PortHolds] = []

    def take(count: int) -> list[int]:
        held.append(hold_free_ports(count))
        return list(held[-1].chosen.values())

    yield take
    try:
        still = [p for holds in held for p in holds.chosen.values() if listening(p)]
        assert not still, f"ports still listening after the test: {still}"
    finally:
        for holds in held:
            holds.close()


class Project:
    """A generated test project: a compose file, test files, and a pytest run of them."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path

    def compose(self, text: str, name: str = "docker-compose.yml") -> Path:
        path = self.path / name
        path.write_text(textwrap.dedent(text))
        return path

    def env(self, text: str) -> Path:
        path = self.path / ".env"
        path.write_text(textwrap.dedent(text))
        return path

    def tests(self, text: str) -> None:
        self.pytester.makepyfile(test_project=textwrap.dedent(text))

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest("-p", "no:cacheprovider", *args)

    def run_subprocess(self, *args: str, timeout: float = 120) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(*PYTEST_ARGS, *args, timeout=timeout)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Project:
    return Project(pytester)


@pytest.fixture(scope="session")
def engine() -> str:
    """The Docker engine's version, with the test image imported; skips without one."""
    try:
        info = docker_cli("info", "--format", "{{.ServerVersion}}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no Docker engine: {exc}")
    if info.returncode != 0:
        pytest.skip(f"no Docker engine answers: {info.stderr.strip()[:120]}")
    if docker_cli("image", "inspect", IMAGE).returncode != 0:
        import_root_image(IMAGE)
    return info.stdout.strip()


@pytest.fixture
def compose_project(engine: str, project: Project) -> Iterator[Project]:
    """A generated project whose containers must all be gone after the test."""
    assert our_containers() == [], "a previous test of this run left containers"
    yield project
    leaked = our_containers()
    if leaked:
        docker_cli("rm", "-f", *[c.split()[0] for c in leaked])
    assert not leaked, f"containers outlived the test: {leaked}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Handle]]:
    """A real PostgreSQL and Redis, started by our own local backend, for a whole module:
    inside a leak check of its own, under a run id no other run shares."""
    path = tmp_path_factory.mktemp("servers") / "docker-compose.yml"
    path.write_text(
        textwrap.dedent(f"""
        services:
          db:
            image: postgres:16
            environment: {{POSTGRES_USER: probe, POSTGRES_PASSWORD: pw-probe, POSTGRES_DB: probedb}}
            ports: ["{free_port()}:5432"]
          cache:
            image: redis:7
            command: redis-server --requirepass pw-redis
            ports: ["{free_port()}:6379"]
    """)
    )
    with leak_checked():
        backend = LocalBackend(run_id=unique_run_id("probes"))
        orch = Orchestrator(load_stack(path, environ={}), backend)
        try:
            orch.start()
            yield {name: orch.wait(name) for name in ("db", "cache")}
        finally:
            orch.stop()


@pytest.fixture(scope="session")
def podman() -> Iterator[PodmanService]:
    """Podman's Docker API service, started for this session on a socket of its own (its
    ``host`` for DOCKER_HOST) and stopped after it; skips, saying why, where it cannot run."""
    started = start_podman()
    if isinstance(started, str):
        pytest.skip(started)
    try:
        yield started
    finally:
        started.stop()


def _registry(user: str) -> Iterator[Registry]:
    started = start_registry(user=user)
    if isinstance(started, str):
        pytest.skip(started)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """A registry on loopback for this session, open to all."""
    yield from _registry("")


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[Registry]:
    """A registry on loopback for this session, behind htpasswd (one user)."""
    yield from _registry("pyairtable")
