"""pytest-xdist: one stack for all workers, torn down once, after the last."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from leakcheck import LeakCheck

from conftest import Ports, Project, wait_until


def counted_compose(project: Project, ports: list[int]) -> Path:
    """Two services that append a line to boots.txt each time they are started."""
    a, b = ports
    boots = project.path / "boots.txt"
    project.compose(f"""
        services:
          a:
            image: x
            x-pyairtable:
              local: {{command: ["sh", "-c", "echo a >> {boots}; exec python -m pytest_pyairtable.standin --name a --port {a}"]}}
              probe: {{http: "http://127.0.0.1:{a}/health"}}
          b:
            image: x
            depends_on: {{a: {{condition: service_healthy}}}}
            x-pyairtable:
              local: {{command: ["sh", "-c", "echo b >> {boots}; exec python -m pytest_pyairtable.standin --name b --port {b}"]}}
              probe: {{http: "http://127.0.0.1:{b}/health"}}
    """)
    return boots


@pytest.mark.parametrize("workers", [2, 4])
def test_one_boot_one_teardown_same_ports(
    project: Project, free_ports: Ports, workers: int, no_leaks: LeakCheck
) -> None:
    boots = counted_compose(project, free_ports(2))
    seen = project.path / "seen"
    seen.mkdir()
    project.tests(f"""
        import os, time
        import pytest

        @pytest.mark.parametrize("i", range({workers * 3}))
        def test_uses_stack(pyairtable_b, pyairtable_a, i):
            (__import__("pathlib").Path({str(seen)!r}) / f"{{os.getpid()}}-{{i}}").write_text(
                f"{{pyairtable_a.port}} {{pyairtable_b.port}} {{pyairtable_b.tier}}")
            time.sleep(0.05)
    """)
    result = project.run_subprocess("-n", str(workers))
    # the run is over when pytest has returned: the controller stopped the stack and its
    # reaper has ended, with nothing left for anyone to clean up later
    assert no_leaks.leftovers() == []
    result.assert_outcomes(passed=workers * 3)
    assert sorted(boots.read_text().split()) == ["a", "b"]  # booted once, not per worker
    values = {p.read_text() for p in seen.iterdir()}
    assert len(values) == 1 and values.pop().endswith(" 2")  # every worker saw the same handles
    assert len({p.name.split("-")[0] for p in seen.iterdir()}) > 1  # really several workers
    result.stdout.fnmatch_lines(["*started 2 of 2 services*"])


def test_a_failure_is_reported_in_full_once_across_workers(
    project: Project, free_ports: Ports
) -> None:
    (port,) = free_ports(1)
    project.compose(f"""
        services:
          broken:
            image: x
            x-pyairtable:
              local: {{command: ["sh", "-c", "echo 'no config found'; exit 7"]}}
              probe: {{http: "http://127.0.0.1:{port}/health"}}
    """)
    project.tests("""
        import pytest

        @pytest.mark.parametrize("i", range(6))
        def test_it(pyairtable_broken, i):
            pass
    """)
    result = project.run_subprocess("-n", "2")
    result.assert_outcomes(errors=6)
    out = result.stdout.str()
    assert out.count("no config found") == 1, out
    references = [
        line
        for line in out.splitlines()
        if line.startswith("[pyairtable]") and "reported in full at" in line
    ]
    assert len(references) == 5, out  # one line each for the others (the summary repeats it)


def test_workers_killed_midway_still_tear_down_once(
    project: Project, free_ports: Ports, no_leaks: LeakCheck
) -> None:
    boots = counted_compose(project, free_ports(2))
    project.tests("""
        import os
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_crashes_a_worker(pyairtable_b, i):
            if i == 0:
                os._exit(3)  # the worker dies; xdist replaces it
    """)
    result = project.run_subprocess("-n", "2")
    assert no_leaks.leftovers() == []  # the controller stopped everything after the last worker
    # the crashed test fails; the replacement worker gets the same stack for the others
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*worker 'gw*' crashed while running 'test_project.py::test_crashes_a_worker[[]0[]]'*"]
    )
    assert sorted(boots.read_text().split()) == ["a", "b"]


def test_a_request_after_the_owner_stopped_starts_nothing(
    tmp_path: Path, free_ports: Ports, no_leaks: LeakCheck
) -> None:
    """Ctrl-C under xdist: the controller stops while a worker still asks for a service.
    The worker gets an error or a closed connection, never a stack nobody would stop,
    and when stop() returns no thread of the share is left."""
    import json
    import socket
    import threading

    from pytest_pyairtable.frontends.pytest.roles import Controller as Front
    from pytest_pyairtable.session.runtime import runtime_for
    from pytest_pyairtable.session.settings import resolve

    (port,) = free_ports(1)
    (tmp_path / "docker-compose.yml").write_text(
        "services:\n  a:\n    image: x\n    x-pyairtable:\n"
        f"      local: {{command: python -m pytest_pyairtable.standin --name a --port {port}}}\n"
        f'      probe: {{tcp: "127.0.0.1:{port}"}}\n'
    )
    threads_before = set(threading.enumerate())
    runtime = runtime_for(resolve(lambda s: None, lambda s: None, {}), tmp_path, tmp_path)
    runtime.needed = {"a"}
    session = Front(runtime)
    session.serve_workers()
    assert session.server is not None
    path = session.server.path
    with socket.socket(socket.AF_UNIX) as worker:
        worker.connect(path)  # a worker is connected from its first fixture on
        wait_until(lambda: len(threading.enumerate()) == len(threads_before) + 2)
        session.stop()
        request = {"service": "a", "needed": ["a"], "nodeid": "test_x.py::test_a"}
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            worker.sendall(json.dumps(request).encode() + b"\n")
        answer = worker.makefile("rb").readline()
    assert answer == b"" or json.loads(answer)["ok"] is False, answer
    assert no_leaks.processes() == {}
    assert set(threading.enumerate()) - threads_before == set()
