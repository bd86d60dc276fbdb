"""A container's healthcheck, run by us, costs what it must: the port its test targets
gates it (read from the test: curl, wget, python's urllib, bash's /dev/tcp), each run's
cost paces the next, independent services' checks run side by side, and a service is
still ready only when its own healthcheck passes.

Each check here writes a line per run into a directory mounted from the test, so what
ran inside the container is counted from outside it.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from containers import service

from conftest import Ports, Project
from pytest_pyairtable.backends.healthexec import REST_PER_COST
from pytest_pyairtable.backends.healthgate import check_target


@pytest.fixture(autouse=True)
def no_forecasts_of_other_tests(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test's first boot is a first boot: a run foreseen from another test's boots
    on the same port would run while the port refuses (readyforecast.py)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# A check by its own script in the mounted directory: fetches the URL given, appends
# "<start time> <1 if it answered 200 else 0>" to /w/runs, then sleeps what it is told.
CHECK = """
import sys, time, urllib.request
started = time.time()
try:
    ok = urllib.request.urlopen(sys.argv[1], timeout=2).status == 200
except Exception:
    ok = False
with open(sys.argv[2], "a") as runs:
    runs.write(f"{started:.6f} {int(ok)}\\n")
time.sleep(float(sys.argv[3]))
sys.exit(0 if ok and sys.argv[4] == "pass" else 1)
"""


def checked_service(
    project: Project, name: str, port: int, *, delay: float, sleep: float, verdict: str
) -> str:
    """A stand-in listening ``delay`` s after its start, with the check script as its
    healthcheck (exec form, no port of the probe's: what gates it is the test's URL)."""
    work = project.path / "w"
    work.mkdir(exist_ok=True)
    (work / "check.py").write_text(CHECK)
    url = f"http://127.0.0.1:{port}/health"
    test = f'["CMD", "/usr/bin/python3", "/w/check.py", "{url}", "/w/{name}.runs", "{sleep}", "{verdict}"]'
    return service(
        name,
        f"""
    command: ["/usr/bin/python3", "-m", "pytest_pyairtable.standin", "--name", "{name}", "--port", "{port}", "--startup-delay", "{delay}"]
    healthcheck: {{test: {test}, interval: 300s, timeout: 10s, retries: 1}}""",
        mounts=(f"{work}:/w",),
    )


def runs(project: Project, name: str) -> list[tuple[float, bool]]:
    path = project.path / "w" / f"{name}.runs"
    lines = path.read_text().split() if path.exists() else []
    return [(float(t), ok == "1") for t, ok in zip(lines[::2], lines[1::2], strict=True)]


def test_a_check_whose_port_refuses_is_not_run_until_the_port_accepts(
    compose_project: Project, free_ports: Ports
) -> None:
    """python3's urllib targets a port that opens 2 s after the start: every run of the
    check found it answering (ungated, the first run came at once and failed)."""
    (port,) = free_ports(1)
    compose_project.compose(
        "services:"
        + checked_service(compose_project, "a", port, delay=2.0, sleep=0, verdict="pass")
    )
    compose_project.tests("def test_a(pyairtable_a): pass\n")
    compose_project.run("--pyairtable-backend", "compose").assert_outcomes(passed=1)
    seen = runs(compose_project, "a")
    assert seen and all(ok for _, ok in seen), seen


def test_the_port_accepting_is_not_ready_and_a_costly_check_is_paced_by_its_cost(
    compose_project: Project, free_ports: Ports
) -> None:
    """The port answers, the check fails: not ready, the error names the check's exit
    code. Each run costs over 0.3 s (it sleeps): the next starts no sooner than the run
    plus REST_PER_COST times it (at the gate's backoff, it came ~50 ms after)."""
    (port,) = free_ports(1)
    compose_project.compose(
        "services:"
        + checked_service(compose_project, "a", port, delay=0, sleep=0.3, verdict="fail")
    )
    compose_project.tests("def test_a(pyairtable_a): pass\n")
    result = compose_project.run(
        "--pyairtable-backend", "compose", "--pyairtable-health-check-timeout", "3"
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*healthcheck exit code 1*"])
    starts = [t for t, ok in runs(compose_project, "a") if ok]
    assert len(starts) >= 2, starts  # the port answered each run; the check still failed
    least = 0.3 * (1 + REST_PER_COST) * 0.95
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= least, gaps


def test_independent_services_checks_run_side_by_side(
    compose_project: Project, tmp_path: Path
) -> None:
    """Each check waits, inside its first run, for the other's first run to have begun:
    checks made to queue on one channel or lock would each run out of their timeout
    and run again."""
    meeting = compose_project.path / "m"
    meeting.mkdir()
    body = ""
    for name, other in (("a", "b"), ("b", "a")):
        check = (
            f"echo run >> /m/{name}.runs; touch /m/{name}; i=0; "
            f"while [ ! -e /m/{other} ] && [ $$i -lt 400 ]; do sleep 0.05; i=$$((i+1)); done; "
            f"[ -e /m/{other} ]"
        )
        body += service(
            name,
            f"""
    command: ["/usr/bin/python3", "-c", "import time; time.sleep(600)"]
    healthcheck: {{test: ["CMD-SHELL", "{check}"], interval: 300s, timeout: 8s, retries: 1}}""",
            mounts=(f"{meeting}:/m",),
        )
    compose_project.compose("services:" + body)
    compose_project.tests("def test_both(pyairtable_a, pyairtable_b): pass\n")
    compose_project.run("--pyairtable-backend", "compose").assert_outcomes(passed=1)
    for name in ("a", "b"):
        assert (meeting / f"{name}.runs").read_text().split() == ["run"], name


def test_on_a_network_of_its_own_the_containers_listening_socket_gates_the_check(
    compose_project: Project, free_ports: Ports
) -> None:
    """network_mode: none: the host cannot connect to the port; the container's own
    network namespace says when it listens."""
    (port,) = free_ports(1)
    compose_project.compose(
        "services:"
        + checked_service(compose_project, "a", port, delay=2.0, sleep=0, verdict="pass").replace(
            "network_mode: host", "network_mode: none"
        )
    )
    compose_project.tests("def test_a(pyairtable_a): pass\n")
    compose_project.run("--pyairtable-backend", "compose").assert_outcomes(passed=1)
    seen = runs(compose_project, "a")
    assert seen and all(ok for _, ok in seen), seen


def _test(*argv: str) -> tuple[str, ...]:
    return argv


@pytest.mark.parametrize(
    ("test", "target"),
    [
        (_test("CMD", "curl", "-f", "http://localhost:8080/health"), ("127.0.0.1", 8080)),
        (_test("CMD-SHELL", "wget -qO- http://127.0.0.1:81/ || exit 1"), ("127.0.0.1", 81)),
        (
            _test(
                "CMD",
                "python3",
                "-c",
                "import urllib.request; urllib.request.urlopen('http://0.0.0.0:5000/up')",
            ),
            ("127.0.0.1", 5000),
        ),
        (
            _test("CMD-SHELL", "python -c \"import requests; requests.get('http://localhost')\""),
            ("127.0.0.1", 80),
        ),
        (_test("CMD-SHELL", "bash -c ':> /dev/tcp/127.0.0.1/6379'"), ("127.0.0.1", 6379)),
        (_test("CMD", "curl", "-fk", "https://[::1]:8443/"), ("::1", 8443)),
        (_test("CMD", "curl", "http://api:9000/health"), ("127.0.0.1", 9000)),  # its own name
        (_test("CMD", "curl", "http://db:5432/"), None),  # another service
        (_test("CMD-SHELL", "curl -f http://localhost:1/ || curl -f http://localhost:2/"), None),
        (_test("CMD", "pg_isready", "-U", "postgres"), None),  # no port written: no gate
        (_test("CMD", "curl", "http://localhost:99999/"), None),
    ],
)
def test_the_port_a_healthcheck_targets_is_read_from_its_test(
    test: tuple[str, ...], target: tuple[str, int] | None
) -> None:
    assert check_target(test, own_names=("api",)) == target


def test_the_cpu_a_check_spent_is_counted_by_the_shell_it_ran_in(engine: str) -> None:
    """The shell kept open in the container reports its children's CPU (``times``): a
    check that spends CPU is charged at least what it measured of itself."""
    from containers import docker_cli, sleeping_container

    from pytest_pyairtable.backends.engines import connect
    from pytest_pyairtable.backends.execsession import ShellSession

    cid = sleeping_container()
    api, _ = connect()
    try:
        session = ShellSession(api, cid, "/bin/sh", 10)
        burn = (
            "/usr/bin/python3 -c 'import time\n"
            "end = time.process_time() + 0.2\n"
            "while time.process_time() < end: pass\n"
            "print(time.process_time())'"
        )
        code, output = session.run(burn, 30)
        session.close()
    finally:
        docker_cli("rm", "-f", cid)
        api.close()
    assert code == 0, output
    assert session.last_cpu is not None
    # times prints hundredths, truncated, and the charge is the difference of two readings
    assert session.last_cpu >= float(output.split()[-1]) - 0.021


def test_the_kept_shell_runs_checks_side_by_side_and_reads_back_each_ones_end(
    engine: str,
) -> None:
    """Commands launched in the background of the kept shell (a volley's runs) end in
    any order, each read back by its tag with its own exit code; a command in the
    foreground afterwards waits for them, and its output holds none of their lines."""
    from containers import docker_cli, sleeping_container

    from pytest_pyairtable.backends.engines import connect
    from pytest_pyairtable.backends.execsession import ShellSession

    cid = sleeping_container()
    api, _ = connect()
    try:
        session = ShellSession(api, cid, "/bin/sh", 10)
        try:  # each command one program, as a test's argv is
            slow = session.launch("/bin/sh -c 'sleep 0.4; exit 3'")
            quick = session.launch("/bin/sh -c 'echo noise; exit 5'")
            passing = session.launch("/usr/bin/sleep 0.2")
            ended: dict[int, int] = {}
            order: list[int] = []
            while len(ended) < 3:
                got = session.ended(10)
                assert got, "a launched command never ended"
                order += list(got)
                ended |= got
            assert ended == {slow: 3, quick: 5, passing: 0}
            assert order.index(quick) < order.index(passing) < order.index(slow), order
            assert not session.launched
            session.launch("/bin/sh -c 'sleep 0.3; exit 7'")  # running when the next comes
            code, output = session.run("/bin/sh -c 'echo foreground; exit 2'", 10)
            assert (code, output.strip()) == (2, "foreground")
            assert not session.launched
            assert session.last_cpu is None  # (not charged with what the launched run took)
        finally:
            session.close()
    finally:
        docker_cli("rm", "-f", cid)
        api.close()


def test_runs_still_going_when_the_kept_shell_closes_are_reaped_not_left_as_zombies(
    engine: str,
) -> None:
    """The container's PID 1 here (python sleeping) reaps nothing: a run the shell left
    behind would stay a zombie for the container's life."""
    from containers import docker_cli, sleeping_container

    from pytest_pyairtable.backends.engines import connect
    from pytest_pyairtable.backends.execsession import ShellSession

    cid = sleeping_container()
    api, _ = connect()
    states = 'for f in /proc/[0-9]*/stat; do read -r s < $f && echo "$s"; done'
    try:
        ended = ShellSession(api, cid, "/bin/sh", 10)
        ended.launch("/bin/true")
        assert ended.ended(10)  # read back, but not yet reaped by the shell (dash)
        ended.close()
        session = ShellSession(api, cid, "/bin/sh", 10)
        session.launch("/usr/bin/sleep 0.3")
        session.close()  # while the launched run goes on
        deadline = time.monotonic() + 10
        while True:
            listed = docker_cli("exec", cid, "/bin/sh", "-c", states).stdout
            # the run and the shell around it: running, then gone (or a zombie: "Z")
            left = [ln for ln in listed.splitlines() if "(sleep)" in ln or " Z " in ln]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not left, listed
    finally:
        docker_cli("rm", "-f", cid)
        api.close()
