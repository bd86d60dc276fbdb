"""Coverage of host-run services: a run measured with pytest-cov's --cov measures the
Python services the local backend runs too, and their lines are in the same report,
alone and under xdist, whether a service is stopped by SIGTERM or another stop signal.
Real processes throughout: pytest in a subprocess, a service of the project's own, and
the coverage data read back with coverage's API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import LeakCheck, Project

coverage = pytest.importorskip("coverage")
pytest.importorskip("pytest_cov")

Ports = Callable[[int], list[int]]

# The service under test: a package of the project, each of its lines marked so a test
# can ask whether coverage saw it run.
SERVER = """
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def greet(name):
    return "hello " + name  # line: greet


def farewell(name):
    return "bye " + name  # line: farewell


def never_called():
    return "not reached"  # line: never


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/hello":
            body = greet("tests")
        elif self.path == "/bye":
            body = farewell("tests")
        else:
            body = "ok"
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    seen = {
        "config": bool(os.environ.get("COVERAGE_PROCESS_CONFIG")),
        "coverage_imported": "coverage" in sys.modules,
        "path": sys.path,
    }
    with open(os.environ["SEEN"], "w") as f:
        json.dump(seen, f)
    HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def service_project(project: Project, port: int, hup_port: int) -> Path:
    """The project: its service package, a compose file running it from the working tree
    twice (``svc``, stopped by SIGTERM, and ``hup``, stopped by SIGHUP, which ends a
    Python process without its exit handlers), a shell service beside them (no Python:
    left alone), and tests: test_hello calls ``svc``, test_bye calls ``hup``."""
    package = project.path / "svcpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    server = package / "server.py"
    server.write_text(SERVER)
    project.compose(f"""
        services:
          svc:
            image: example/svc
            x-pyairtable:
              local:
                command: [python, -m, svcpkg.server]
                env: {{PORT: "{port}", SEEN: "{project.path / "seen.json"}"}}
              probe: {{http: "http://127.0.0.1:{port}/health"}}
          hup:
            image: example/svc
            stop_signal: SIGHUP
            x-pyairtable:
              local:
                command: [python, -m, svcpkg.server]
                env: {{PORT: "{hup_port}", SEEN: "{project.path / "seen-hup.json"}"}}
              probe: {{http: "http://127.0.0.1:{hup_port}/health"}}
          shell:
            image: example/shell
            x-pyairtable:
              local: {{command: [sh, -c, "echo ready; exec sleep 600"]}}
              probe: {{log: ready}}
    """)
    project.pytester.makepyfile(
        test_hello=f"""
        import httpx

        def test_hello(pyairtable_svc, pyairtable_shell):
            assert httpx.get("http://127.0.0.1:{port}/hello").text == "hello tests"
        """,
        test_bye=f"""
        import httpx

        def test_bye(pyairtable_hup):
            assert httpx.get("http://127.0.0.1:{hup_port}/bye").text == "bye tests"
        """,
    )
    return server


def line_of(path: Path, mark: str) -> int:
    lines = path.read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if f"# line: {mark}" in text)


def measured_lines(project: Project, server: Path) -> set[int]:
    """The lines of ``server`` in the run's combined data file."""
    data = coverage.CoverageData(basename=str(project.path / ".coverage"))
    data.read()
    return set(data.lines(str(server)) or ())


@pytest.mark.parametrize("workers", [0, 2])
def test_the_service_is_in_the_same_report_as_the_tests(
    project: Project, free_ports: Ports, no_leaks: LeakCheck, workers: int
) -> None:
    """Its lines hit by the tests are in the report; the line nothing calls is missing;
    under xdist too, where the controller stops the stack before pytest-cov combines.
    The service has no signal handler of its own: ``greet`` is only run by ``svc``,
    stopped by SIGTERM, ``farewell`` only by ``hup``, stopped by SIGHUP."""
    port, hup_port = free_ports(2)
    server = service_project(project, port, hup_port)
    xdist = ["-n", str(workers)] if workers else []
    result = project.run_subprocess(
        "-p", "pytest_cov", "--cov=svcpkg", "--cov-report=term-missing", *xdist
    )
    result.assert_outcomes(passed=2)
    assert no_leaks.leftovers() == []
    lines = measured_lines(project, server)
    assert {line_of(server, "greet"), line_of(server, "farewell")} <= lines
    assert line_of(server, "never") not in lines
    # the terminal report lists the module, its one unreached line missing
    result.stdout.fnmatch_lines([f"svcpkg/server.py * 1 *{line_of(server, 'never')}*"])
    result.stdout.fnmatch_lines(["pyairtable: coverage: Python services run on this host*"])
    # every data file was combined: none arrived after the report
    assert sorted(p.name for p in project.path.glob(".coverage*")) == [".coverage"]
    seen = json.loads((project.path / "seen.json").read_text())
    assert seen["config"] and seen["coverage_imported"]


def test_without_coverage_nothing_changes(
    project: Project, free_ports: Ports, no_leaks: LeakCheck
) -> None:
    """No --cov: the service gets no coverage settings and no directory of ours on its
    path, and pytest never imports coverage on our account."""
    port, hup_port = free_ports(2)
    service_project(project, port, hup_port)
    project.pytester.makeconftest("""
        import json, sys
        def pytest_unconfigure(config):
            with open("imported.json", "w") as f:
                json.dump("coverage" in sys.modules, f)
    """)
    result = project.run_subprocess("test_hello.py")
    result.assert_outcomes(passed=1)
    seen = json.loads((project.path / "seen.json").read_text())
    assert not seen["config"] and not seen["coverage_imported"]
    assert not any(p.endswith("sitedir") for p in seen["path"])
    assert json.loads((project.path / "imported.json").read_text()) is False
    assert "coverage:" not in result.stdout.str()
    assert not list(project.path.glob(".coverage*"))


def test_a_kept_stack_is_not_measured(project: Project) -> None:
    """Its services would outlive the report: the run says they are not measured."""
    project.compose("services:\n  svc:\n    image: example/svc\n")
    project.tests("def test_needs_no_service():\n    pass\n")
    result = project.run_subprocess("-p", "pytest_cov", "--cov=.", "--pyairtable-keep")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*coverage: the services are not measured: --pyairtable-keep*"])
    assert "Python services run on this host are measured" not in result.stdout.str()


# -- the service's side: its sitecustomize, in real interpreters ---------------------------


# A signal that lands between the interpreter's last check and the sleep's system call
# leaves its Python handler pending until that sleep ends (CPython's sleep is not woken
# for it): short sleeps bound that to 50 ms, where one sleep(60) once took the whole minute
# beside two CPU hogs.
SLEEPER = (
    "import time\nx = 1\nprint('up', flush=True)\nfor _ in range(1200):\n    time.sleep(0.05)\n"
)


def _measured_env(tmp_path: Path, *path: Path, stop_signal: str = "SIGTERM") -> dict[str, str]:
    from pytest_pyairtable.backends.measure import ServiceCoverage

    config = coverage.Coverage(data_file=str(tmp_path / ".coverage"), source=[str(tmp_path)])
    measured = ServiceCoverage.from_config(config.config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in path)
    env.update(measured.environment(env, signal.Signals[stop_signal]))
    return env


def test_the_sitecustomize_it_hides_still_runs(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import os\nos.environ['THEIRS_RAN'] = 'yes'\n")
    code = "import os, sitecustomize, coverage; print(os.environ.get('THEIRS_RAN'), sitecustomize.__file__, coverage.Coverage.current() is not None)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=_measured_env(tmp_path, theirs),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    ran, module, started = out.stdout.split()
    assert (ran, started) == ("yes", "True")
    assert module == str(theirs / "sitecustomize.py")  # `import sitecustomize` finds theirs


def test_an_interpreter_without_coverage_says_so_and_runs(tmp_path: Path) -> None:
    """The service's own interpreter may have no coverage: its log says why it is not
    measured, and it runs as ever (here coverage is made unimportable on its path)."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "coverage.py").write_text("raise ImportError('not installed here')\n")
    out = subprocess.run(
        [sys.executable, "-c", "print('service ran')"],
        env=_measured_env(tmp_path, shadow),
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert out.stdout == "service ran\n"
    assert "coverage is not installed for" in out.stderr
    assert "Fix: install coverage>=7.10 where the service runs" in out.stderr


@pytest.mark.parametrize("stop_signal", ["SIGTERM", "SIGHUP"])
def test_the_stop_signal_writes_the_data(tmp_path: Path, stop_signal: str) -> None:
    script = tmp_path / "svc.py"
    script.write_text(SLEEPER)
    env = _measured_env(tmp_path, stop_signal=stop_signal)
    with subprocess.Popen(
        [sys.executable, str(script)], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "up\n"
        proc.send_signal(signal.Signals[stop_signal])
        assert proc.wait(30) == -signal.Signals[stop_signal]  # it still dies of it
    files = list(tmp_path.glob(".coverage.*"))
    assert len(files) == 1, files
    data = coverage.CoverageData(basename=str(files[0]))
    data.read()
    assert {2, 3} <= set(data.lines(str(script)) or ())  # run before the signal came


def test_a_second_sigterm_while_it_saves_breaks_nothing(tmp_path: Path) -> None:
    """A stop that signals twice (the group, then the process) once entered coverage's
    own SIGTERM handler again during its save, which broke the data file: the second
    signal here comes the moment the file appears, in the middle of the save."""
    script = tmp_path / "svc.py"
    script.write_text(SLEEPER)
    env = _measured_env(tmp_path)
    for _ in range(5):
        for old in tmp_path.glob(".coverage.*"):
            old.unlink()
        with subprocess.Popen(
            [sys.executable, str(script)], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True
        ) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "up\n"
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            while not list(tmp_path.glob(".coverage.*")) and time.monotonic() < deadline:
                pass  # no sleep: the second signal must land inside the save
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == -signal.SIGTERM
            assert proc.stdout.read() == ""
        (written,) = tmp_path.glob(".coverage.*")
        data = coverage.CoverageData(basename=str(written))
        data.read()
        assert {2, 3} <= set(data.lines(str(script)) or ())


def test_the_settings_handed_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parallel files, saved on SIGTERM, relative omit patterns also absolute (the
    service may work elsewhere); the run's own settings are not changed."""
    from pytest_pyairtable.backends.measure import ServiceCoverage

    monkeypatch.chdir(tmp_path)
    cov = coverage.Coverage(data_file=".cov-data", omit=["gen/*", "*/vendored/*"])
    measured = ServiceCoverage.from_config(cov.config)
    handed = type(cov.config).deserialize(measured.config)
    assert (handed.parallel, handed.sigterm) == (True, True)
    assert handed.data_file == measured.data_file == str(tmp_path / ".cov-data")
    assert handed.run_omit == ["gen/*", str(tmp_path / "gen/*"), "*/vendored/*"]
    assert (cov.config.parallel, cov.config.sigterm) == (False, False)


def test_old_coverage_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Coverage before 7.10 cannot hand its settings on (no serialize): the run is told,
    not silently unmeasured. (A stand-in module: an old coverage is not installed here.)"""
    from types import SimpleNamespace

    from pytest_pyairtable.backends.measure import of_this_process

    old = SimpleNamespace(
        __version__="7.4.0",
        Coverage=SimpleNamespace(current=lambda: SimpleNamespace(config=object())),
    )
    monkeypatch.setitem(sys.modules, "coverage", old)
    found = of_this_process()
    assert isinstance(found, str)
    assert "coverage 7.4.0" in found and "pip install 'coverage>=7.10'" in found


def test_not_measuring_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_pyairtable.backends.measure import of_this_process

    monkeypatch.delitem(sys.modules, "coverage", raising=False)
    assert of_this_process() is None  # never imported: nothing to ask, nothing imported
    assert "coverage" not in sys.modules


def test_the_placed_stack_measures_its_host_part(tmp_path: Path) -> None:
    """--pyairtable-local: the host part is the local backend, made from the same options."""
    from pytest_pyairtable.backends.base import BackendOptions, Placement
    from pytest_pyairtable.backends.measure import ServiceCoverage
    from pytest_pyairtable.backends.placement import PlacedBackend

    measured = ServiceCoverage(config="e30=", data_file=str(tmp_path / ".coverage"))
    options = BackendOptions(
        run_id=f"{os.getpid()}-placed-cov",
        compose_file=tmp_path / "docker-compose.yml",
        placement=Placement(host=("svc",), rest="compose"),
        coverage=measured,
    )
    placed = PlacedBackend.create(options)
    try:
        host = placed._backend("local")
        assert getattr(host, "coverage", None) is measured
    finally:
        placed.close()
