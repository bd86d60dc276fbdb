"""Shared test fixtures: free loopback ports, generated projects, and a leak check.

Every test ends with a check that nothing it started outlives it: no process carrying
our run-id marker, no run temp dir, nothing listening on the ports it was given.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import httpcore  # noqa: F401
import httpx  # noqa: F401
import psycopg  # noqa: F401
import pytest
import redis  # noqa: F401

from pytest_pyairtable.backends.local import RUN_ID_VAR

# The client libraries are imported here, before any in-process pytester run: pytester
# drops modules first imported inside a run, and psycopg's C extension then raises
# exception classes of the dropped module that a fresh import no longer catches (httpx
# likewise maps httpcore's exceptions by the classes it saw first).


def marked_processes() -> dict[int, str]:
    """PID -> run id of each live process that a stack started under this test's
    PYAIRTABLE_TMPDIR (found by its environment). Other runs may share the machine (a
    soak, a developer's stack): this check must never see, let alone kill, theirs."""
    found: dict[int, str] = {}
    marker = RUN_ID_VAR.encode() + b"="
    own = f"PYAIRTABLE_TMPDIR={os.environ.get('PYAIRTABLE_TMPDIR', '')}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z" or own not in environ:
            continue
        for item in environ:
            if item.startswith(marker):
                found[int(entry.name)] = item[len(marker) :].decode()
    return found


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(autouse=True)
def no_leaks(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    shm_before = set(Path("/dev/shm").glob("pyairtable-*"))
    # Not under pytest's own 0700 temp dir: PostgreSQL runs as another user when we are root.
    root = Path(tempfile.mkdtemp(prefix="pyairtable-test-"))
    root.chmod(0o755)
    monkeypatch.setenv("PYAIRTABLE_TMPDIR", str(root))
    before = set(marked_processes())
    yield root
    leaked = {pid: run for pid, run in marked_processes().items() if pid not in before}
    for pid in leaked:  # clean up so one failure does not cascade into the next test
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not leaked, f"processes outlived the test: {leaked}"
    run_dirs = [p.name for p in root.iterdir() if not p.name.endswith("-logs")]
    new_shm = set(Path("/dev/shm").glob("pyairtable-*")) - shm_before
    run_dirs += [p.name for p in new_shm if _from_this_test(p)]
    shutil.rmtree(root, ignore_errors=True)
    assert not run_dirs, f"temp dirs outlived the test: {run_dirs}"


def _from_this_test(path: Path) -> bool:
    """A tmpfs dir a run of this test made: its owner marker names this test's
    PYAIRTABLE_TMPDIR. Other runs on the machine (other checkouts, other versions)
    share /dev/shm; what they leave is not this test's."""
    try:
        marker = json.loads((path / ".pyairtable-owner.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("tmpdir") == os.environ["PYAIRTABLE_TMPDIR"]


@pytest.fixture
def free_ports() -> Iterator[Callable[[int], list[int]]]:
    """Hands out unused loopback ports; checks after the test that none is still taken."""
    handed: list[int] = []

    def take(count: int) -> list[int]:
        sockets = [socket.socket() for _ in range(count)]
        try:
            for s in sockets:
                s.bind(("127.0.0.1", 0))
            ports = [s.getsockname()[1] for s in sockets]
        finally:
            for s in sockets:
                s.close()
        handed.extend(ports)
        return ports

    yield take
    still = [p for p in handed if listening(p)]
    assert not still, f"ports still listening after the test: {still}"


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
        return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Project:
    return Project(pytester)
