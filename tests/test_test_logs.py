"""Per-test evidence: a failed test's report carries what each service it used logged
while it ran, from real processes and real containers (a placed stack: the service
under test on the host, its dependency in a container), in the terminal, junit XML and
through xdist; masked; bounded; and only from the test's own window."""

from __future__ import annotations

import datetime
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers import IMAGE
from stackrun import cli

from conftest import Ports, Project
from pytest_pyairtable.backends.dockerapi import ENGINE_LAG, LogFollower
from pytest_pyairtable.session.testlogs import TestLogs, window_text

SECRET = "tok-3141-secret"

# A service that logs each request it gets (not its probe's), its secret on /leak.
SERVICE = """
import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

name, port = sys.argv[1], int(sys.argv[2])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/leak":
            secret = os.environ["API_SECRET"]
            print(f"{name}: connecting with {secret}, password=pw-in-a-line", flush=True)
        elif self.path != "/health":
            print(f"{name}: got {self.path}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


print(f"{name}: listening", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def chatty_stack(project: Project, ports: list[int]) -> dict[str, int]:
    """db <- api, and other beside them: three local processes that log their requests."""
    script = project.path / "svc.py"
    script.write_text(SERVICE)
    named = dict(zip(("db", "api", "other"), ports, strict=True))
    body = ""
    for name, port in named.items():
        needs = "\n    depends_on: [db]" if name == "api" else ""
        body += f"""
  {name}:
    image: example/{name}
    environment: {{API_SECRET: "{SECRET}"}}
    x-pyairtable:
      local: {{command: [python, "{script}", {name}, "{port}"]}}
      probe: {{http: "http://127.0.0.1:{port}/health"}}{needs}"""
    project.compose("services:" + body)
    return named


def section(out: str, test: str) -> str:
    """The part of pytest's output that reports ``test`` (its failure, error or pass)."""
    match = re.search(
        rf"_{{3,}} (?:ERROR at setup of )?{test} _{{3,}}\n(.*?)(?=\n_{{3,}} |\n={{3,}} )", out, re.S
    )
    assert match, f"no report of {test} in:\n{out}"
    return match.group(1)


def log_sections(text: str) -> dict[str, list[str]]:
    """Service -> the lines of its ``pyairtable: <service> log`` section, in order."""
    found: dict[str, list[str]] = {}
    lines: list[str] | None = None
    for line in text.splitlines():
        header = re.fullmatch(r"-+ pyairtable: (\S+) log -+", line)
        if header:
            lines = found[header.group(1)] = []
        elif line.startswith("-") or line.startswith("="):
            lines = None  # pytest's next section, or its summary
        elif lines is not None:
            lines.append(line)
    return found


def junit_cases(path: Path) -> dict[str, str]:
    """Test name -> the text of its test case's <system-out> elements."""
    cases = ET.parse(path).getroot().iter("testcase")
    return {c.get("name", ""): "".join(o.text or "" for o in c.iter("system-out")) for c in cases}


def test_a_failed_test_shows_what_its_services_logged_in_its_own_window(
    project: Project, free_ports: Ports
) -> None:
    ports = chatty_stack(project, free_ports(3))
    project.tests(f"""
        import httpx
        import pytest

        def get(port, path):
            httpx.get(f"http://127.0.0.1:{{port}}{{path}}")

        def test_one(pyairtable_api, pyairtable_other):
            get({ports["api"]}, "/one")
            get({ports["db"]}, "/one")
            get({ports["other"]}, "/one")

        def test_two(pyairtable_api):
            get({ports["db"]}, "/two")
            get({ports["other"]}, "/two")  # not a service of this test's
            get({ports["api"]}, "/two")
            get({ports["api"]}, "/leak")
            assert False, "deliberately"

        @pytest.fixture
        def prepared(pyairtable_api):
            get({ports["api"]}, "/in-setup")
            raise RuntimeError("the fixture broke")

        def test_three(prepared):
            pass

        def test_four(pyairtable_api):
            get({ports["api"]}, "/four")
    """)
    junit = project.path / "junit.xml"
    result = project.run(f"--junitxml={junit}")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    out = result.stdout.str()

    two = section(out, "test_two")
    # its services: the one it asked for and its dependency, in the stack's order
    sections = log_sections(two)
    assert list(sections) == ["db", "api"], two  # not other's, which logged meanwhile
    assert sections["db"] == ["db: got /two"]
    assert sections["api"] == ["api: got /two", "api: connecting with ***, password=***"]
    assert "/one" not in out and "/four" not in out  # not other tests' lines; a pass has none
    assert "listening" not in out  # the boot is not a test's evidence
    assert SECRET not in out and "pw-in-a-line" not in out

    three = section(out, "test_three")  # an error in a fixture: the setup's lines
    assert "pyairtable: api log" in three and "api: got /in-setup" in three
    assert "RuntimeError: the fixture broke" in three

    cases = junit_cases(junit)
    assert "pyairtable: api log" in cases["test_two"] and "api: got /two" in cases["test_two"]
    assert "db: got /two" in cases["test_two"] and "api: got /in-setup" in cases["test_three"]
    assert cases["test_one"] == "" and cases["test_four"] == ""
    assert SECRET not in junit.read_text()


def test_always_attaches_to_passing_tests_bounded_to_the_last_lines(
    project: Project, free_ports: Ports
) -> None:
    ports = chatty_stack(project, free_ports(3))
    project.tests(f"""
        import httpx

        def test_quiet(pyairtable_api):
            pass

        def test_many(pyairtable_api):
            for i in range(5):
                httpx.get(f"http://127.0.0.1:{ports["api"]}/m{{i}}")
    """)
    junit = project.path / "junit.xml"
    result = project.run(
        "--pyairtable-test-logs=always",
        "--pyairtable-test-log-lines=2",
        "-rP",
        f"--junitxml={junit}",
    )
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    many = section(out, "test_many")
    lines = many.split("pyairtable: api log", 1)[1].splitlines()[1:]
    assert lines[0].startswith("[earlier lines of this test omitted; the whole log: ")
    assert lines[1:3] == ["api: got /m3", "api: got /m4"], many
    assert "/m2" not in out
    assert " test_quiet " not in out  # it logged nothing: no section, so -rP shows no pass
    assert "api: got /m4" in junit_cases(junit)["test_many"]


def test_under_xdist_the_controller_reports_what_a_worker_read(
    project: Project, free_ports: Ports
) -> None:
    ports = chatty_stack(project, free_ports(3))
    project.tests(f"""
        import httpx
        import pytest

        @pytest.mark.parametrize("i", range(4))
        def test_fails(pyairtable_api, i):
            httpx.get(f"http://127.0.0.1:{ports["api"]}/call-{{i}}")
            httpx.get(f"http://127.0.0.1:{ports["api"]}/leak")
            assert False
    """)
    junit = project.path / "junit.xml"
    result = project.run_subprocess("-n", "2", f"--junitxml={junit}")
    result.assert_outcomes(failed=4)
    out = result.stdout.str()
    assert "[gw0]" in out and "[gw1]" in out  # really two workers
    for i in range(4):
        assert f"api: got /call-{i}" in section(out, rf"test_fails\[{i}\]")
        assert f"api: got /call-{i}" in junit_cases(junit)[f"test_fails[{i}]"]
    assert "api: connecting with ***, password=***" in out
    assert SECRET not in out + junit.read_text() and "pw-in-a-line" not in out


def test_a_run_attached_to_a_kept_stack_reads_its_logs(project: Project, free_ports: Ports) -> None:
    ports = chatty_stack(project, free_ports(3))
    project.tests("def test_boot(pyairtable_api): pass\n")
    first = project.run("--pyairtable-keep")
    assert first.ret == 0, first.stdout.str()
    try:
        project.tests(f"""
            import httpx

            def test_fails(pyairtable_api):
                httpx.get("http://127.0.0.1:{ports["api"]}/attached")
                assert False
        """)
        second = project.run()
        second.assert_outcomes(failed=1)
        second.stdout.fnmatch_lines(["*attached to the kept stack*"])
        assert "api: got /attached" in section(second.stdout.str(), "test_fails")
    finally:
        down = cli("down", cwd=project.path)
    assert down.returncode == 0, down.stdout + down.stderr


def test_a_placed_stack_shows_host_and_container_lines_up_to_the_failure(
    compose_project: Project, free_ports: Ports
) -> None:
    """api (the service under test) on the host, db in a container: a failing test gets
    both logs, the container's up to the line it wrote just before the failure."""
    db, api = free_ports(2)
    path = compose_project.path
    (path / "svc.py").write_text(SERVICE)
    compose_project.compose(f"""
        services:
          db:
            image: {IMAGE}
            network_mode: host
            volumes: ["/usr:/usr:ro", "{path}:/proj:ro"]
            environment: {{API_SECRET: "{SECRET}"}}
            command: ["/usr/bin/python3", "/proj/svc.py", "db", "{db}"]
            stop_grace_period: 1s
            x-pyairtable: {{probe: {{http: "http://127.0.0.1:{db}/health"}}}}
          api:
            image: example.org/team/api:1.4
            depends_on: [db]
            ports: ["{api}:{api}"]
            x-pyairtable:
              local: {{command: [python, "{path / "svc.py"}", api, "{api}"]}}
              probe: {{http: "http://127.0.0.1:{api}/health"}}
    """)
    compose_project.tests(f"""
        import time
        import httpx
        import pytest

        def test_before(pyairtable_api, pyairtable_db):
            httpx.get("http://127.0.0.1:{api}/before")
            httpx.get("http://127.0.0.1:{db}/before")
            # A container's line reaches its log file a few ms after it was written (the
            # engine's pipeline): one written in the last of them may open the next
            # test's window, as the docs say. Here it arrives before this test ends.
            deadline = time.monotonic() + 30
            while b"db: got /before" not in pyairtable_db.log_path.read_bytes():
                assert time.monotonic() < deadline
                time.sleep(0.01)

        @pytest.mark.parametrize("i", range(4))
        def test_fails(pyairtable_api, i):
            httpx.get(f"http://127.0.0.1:{api}/during-{{i}}")
            httpx.get(f"http://127.0.0.1:{db}/during-{{i}}")
            httpx.get("http://127.0.0.1:{db}/leak")  # the line just before the failure
            pytest.fail("deliberately", pytrace=False)  # reported at once: no traceback
    """)
    junit = path / "junit.xml"
    result = compose_project.run("--pyairtable-local", "api", f"--junitxml={junit}")
    result.assert_outcomes(passed=1, failed=4)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*db *ready  container", "*api *ready  host"])
    for i in range(4):
        failure = section(out, rf"test_fails\[{i}\]")
        assert log_sections(failure) == {
            "db": [f"db: got /during-{i}", "db: connecting with ***, password=***"],
            "api": [f"api: got /during-{i}"],
        }, failure
        assert f"db: got /during-{i}" in junit_cases(junit)[f"test_fails[{i}]"]
    assert "/before" not in out and "listening" not in out
    assert SECRET not in out + junit.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pyairtable-test-logs=sometimes"], "valid values are failed, always, never"),
        (["--pyairtable-test-log-lines=0"], "not between 1 and 10000"),
        (["--pyairtable-test-log-lines=many"], "invalid value 'many'"),
    ],
)
def test_bad_settings_are_usage_errors(project: Project, args: list[str], message: str) -> None:
    project.tests("def test_plain(): pass\n")
    result = project.run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


# -- reading a window --------------------------------------------------------------------


def test_window_reads_from_the_mark_and_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"before\n")
    mark = log.stat().st_size
    log.write_bytes(b"before\n" + b"".join(b"line %d\n" % i for i in range(100_000)))
    assert window_text(log, mark, 2) == (
        f"[earlier lines of this test omitted; the whole log: {log}]\nline 99998\nline 99999"
    )
    assert window_text(log, mark, 200_000).splitlines()[0] == "line 0"
    assert window_text(log, log.stat().st_size, 5) == ""


def test_window_of_a_replaced_file_a_partial_line_and_a_long_one(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"new\nstill writing")  # shorter than the mark: a new file
    assert window_text(log, 1000, 5) == "new\nstill writing"
    log.write_bytes(b"x" * 5000 + b"\n\xff\n")
    shown = window_text(log, 0, 5).splitlines()
    assert shown[0] == "x" * 2000 + " [3000 more characters]" and shown[1] == "\ufffd"
    assert window_text(tmp_path / "missing.log", 0, 5) == ""


def test_marks_per_mode_and_which_reports_carry_them(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    log.write_text("boot\n")
    for mode, wanted in [
        ("failed", {("call", "failed"), ("setup", "failed"), ("teardown", "failed")}),
        (
            "always",
            {("call", "failed"), ("setup", "failed"), ("teardown", "failed"), ("call", "passed")},
        ),
        ("never", set()),
    ]:
        logs = TestLogs(mode, 50)
        logs.begin(["api"])
        logs.seen("api", log)  # ready during the test: marked then
        assert logs.marks == ({} if mode == "never" else {"api": 5})
        phases = {(w, o) for w in ("setup", "call", "teardown") for o in ("passed", "failed")}
        assert {p for p in phases if logs.wanted(*p)} == wanted, mode
        logs.begin(["db"])  # the next test uses another service: nothing of api's
        assert logs.marks == {} and not logs.wanted("call", "failed")


class LateEngine:
    """An engine's log stream whose second line is stamped ``lag`` after the test's
    moment: the engine read it from the container's pipe that late. The lag is made
    here because a real engine's cannot be made on demand (its reader is its own)."""

    def __init__(self, lag: float) -> None:
        self.lag = lag
        self.moment = 0.0
        self.closed = threading.Event()

    def logs(self, cid: str, **kwargs: object) -> LateEngine:
        return self

    def __iter__(self) -> Iterator[bytes]:
        yield f"{stamp(time.time())} db: got /during\n".encode()
        self.moment = time.time()  # the container writes its next line now
        time.sleep(self.lag)  # the engine reads it this much later
        yield f"{stamp(time.time())} db: connecting with ***\n".encode()
        self.closed.wait(30)  # a follow: open until closed

    def close(self) -> None:
        self.closed.set()


def stamp(wall: float) -> str:
    """An engine's timestamp (RFC 3339, nanoseconds) of a wall-clock time."""
    whole = datetime.datetime.fromtimestamp(int(wall), datetime.timezone.utc)
    return f"{whole:%Y-%m-%dT%H:%M:%S}.{int((wall % 1) * 1e9):09d}Z"


@pytest.mark.parametrize("lag", [0.005, ENGINE_LAG / 2])
def test_a_failure_waits_for_the_lines_the_engine_reads_late(tmp_path: Path, lag: float) -> None:
    """What a container wrote before the test ended is in its log once the log has
    reached that moment, however late within ENGINE_LAG the engine stamped it."""
    engine, log = LateEngine(lag), tmp_path / "db.log"
    follower = LogFollower(engine, "c0ffee", log)
    try:
        deadline = time.monotonic() + 30
        while not engine.moment:  # the first line is out; the second is being written
            assert time.monotonic() < deadline
            time.sleep(0.001)
        follower.reach(engine.moment)
        assert log.read_text().splitlines() == ["db: got /during", "db: connecting with ***"]
    finally:
        follower.close()
