"""Helpers for running stacks from the outside: the CLI and pytest as subprocesses,
deadlines, ports, stand-in services, and what a run left on the machine."""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from leakcheck import marked_processes

from pytest_pyairtable.session.ports import PortHolds

# Every pytest a test starts: no cache dir in the project, and none of the installed
# plugins that no inner run uses but each pays for in CPU at every start, xdist workers
# included: hypothesis's imports all of hypothesis at a session's end (0.55 s), anyio's
# imports trio and anyio's backends (0.23 s), pytest-benchmark's 0.06 s, pytest-docker's,
# platformdirs' and pytest-cov's together 0.05 s (of 0.29 s); and the unraisable-exception
# plugin's five gc.collect() at every config's end (0.03 s). Some 250 inner pytest
# processes a run made these a fifth of the suite's CPU. A run measured with --cov asks
# for pytest-cov again (``-p pytest_cov``). The suite itself runs with every plugin
# installed, so living beside them stays tested.
PYTEST_ARGS = (
    "-p", "no:cacheprovider",
    "-p", "no:hypothesispytest",
    "-p", "no:anyio",
    "-p", "no:benchmark",
    "-p", "no:docker",
    "-p", "no:platformdirs",
    "-p", "no:pytest_cov",
    "-p", "no:unraisableexception",
)  # fmt: skip

# The locks of the ports free_port handed out, for this process's life (a module's servers).
_KEPT: list[PortHolds] = []
atexit.register(lambda: [holds.close() for holds in _KEPT])


def hold_free_ports(count: int) -> PortHolds:
    """``count`` ports nothing listens on, chosen as --pyairtable-free-ports chooses:
    below the kernel's ephemeral range, so no outgoing connection (a client's source
    port: any test's, under xdist) takes one before the test's service binds it, and
    each locked against another chooser (another worker, a run's free ports) until
    ``close``. A port from bind(0) is in that range: under a loaded parallel suite a
    connection took one now and then, and a service's launch found it in use."""
    holds = PortHolds.choose(f"port{i}" for i in range(count))
    holds.release(holds.chosen.values())  # the service binds it; the locks stay
    return holds


def free_port() -> int:
    """One such port, locked for this process's life."""
    _KEPT.append(hold_free_ports(1))
    return next(iter(_KEPT[-1].chosen.values()))


if TYPE_CHECKING:  # conftest imports this module
    from conftest import Project


def cli(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    drop: Iterable[str] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``pyairtable ARGS`` with this environment, plus ``env``, minus the ``drop`` names."""
    environ = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in set(drop)}
    return subprocess.run(
        [sys.executable, "-m", "pytest_pyairtable.cli", *args],
        check=False,
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_pytest(cwd: Path, *args: str, output: Any = subprocess.DEVNULL) -> subprocess.Popen[Any]:
    """pytest in the background, as a developer or CI would start it."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, *args],
        cwd=cwd,
        stdout=output,
        stderr=subprocess.STDOUT if output is not subprocess.DEVNULL else subprocess.DEVNULL,
    )


def run_pytest(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """pytest in another project (another checkout on the same machine), to the end."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_ARGS, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def until(predicate: Callable[[], Any], timeout: float = 30, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        time.sleep(0.02)
    return value


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def run_processes(run_id: str) -> set[int]:
    """Live processes a run started (its services, not its reaper)."""
    return {pid for pid, run in marked_processes().items() if run == run_id and _is_service(pid)}


def _is_service(pid: int) -> bool:
    try:
        return b"PYAIRTABLE_SERVICE=" in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def one_service(project: Project, port: int, name: str = "a") -> None:
    """A compose file of one stand-in service, ready when its port answers."""
    standin_services(project, {name: port})


def standin_services(project: Project, ports: dict[str, int]) -> None:
    """A compose file of independent stand-in services, each ready when its port answers."""
    project.compose(
        "services:\n"
        + "".join(
            f"""  {name}:
    image: x
    x-pyairtable:
      local: {{command: python -m pytest_pyairtable.standin --name {name} --port {port}}}
      probe: {{tcp: "127.0.0.1:{port}"}}
"""
            for name, port in ports.items()
        )
    )


def record_of(compose_dir: Path, name: str = "docker-compose.yml") -> Path:
    return compose_dir / ".pyairtable" / f"{name}.json"


def standin_service(name: str, port: int, *, extra: str = "", delay: float = 0.05) -> str:
    """A compose service running the stand-in on ``port``, ready when its /health
    answers; ``extra``: more keys of the service (one per line, no indent). Join them
    after a ``services:`` line for ``Project.compose``."""
    command = f"python -m pytest_pyairtable.standin --name {name} --port {port}"
    lines = [
        f"  {name}:",
        f"    image: example/{name}",
        *(f"    {line}" for line in textwrap.dedent(extra).strip().splitlines()),
        "    x-pyairtable:",
        f"      local: {{command: {command} --startup-delay {delay}}}",
        f'      probe: {{http: "http://127.0.0.1:{port}/health"}}',
    ]
    return "\n".join(lines) + "\n"
