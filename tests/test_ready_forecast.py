"""A costly healthcheck runs ahead of its port's foreseen opening, learnt from the
service's earlier boots (a volley of runs, where a shell is kept open for it); a
forecast that misses costs its runs, the service is still ready only when its own test
passes, and the newer opening is what is foreseen next.

The check here records, for each of its runs, whether its port took connections when
the run began: only a run the forecast started can find it closed (the gate runs the
test once the port accepts)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from containers import service, standin

from conftest import Ports, Project
from pytest_pyairtable.backends import readyforecast
from pytest_pyairtable.backends.readyforecast import KEPT_BOOTS, ReadyTimes, Seen

# Run by the healthcheck (its port gates it): the shell looks at the port as the run
# begins (a built-in, before the interpreter's start-up, which a loaded machine makes
# slow), then the script appends "<1 if the port accepted then> <1 if it passed>" to
# /w/runs. Its cost is a start-up (0.6 s: more than the openings move between boots of a
# loaded machine) before it connects, as an interpreter's imports are; it tries to
# connect for 1 s, as checks with a retry do.
CHECK = """
import socket, sys, time
port, open_at_start = int(sys.argv[1]), sys.argv[2] == "1"
def accepts():
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
time.sleep(0.6)
deadline = time.monotonic() + 1.0
while not (ok := accepts()) and time.monotonic() < deadline:
    time.sleep(0.01)
with open("/w/runs", "a") as runs:
    runs.write(f"{int(open_at_start)} {int(ok)}\\n")
sys.exit(0 if ok else 1)
"""


def foreseen_service(
    project: Project, port: int, beside: str = "", tests: str = "def test_a(pyairtable_a): pass"
) -> None:
    """A stand-in listening after the delay written in /w/delay (read when it starts: the
    container's command, and so its forecast's key, stays the same across boots);
    ``beside``: more services of the stack, ``tests`` the project's tests."""
    work = project.path / "w"
    work.mkdir(exist_ok=True)
    (work / "check.py").write_text(CHECK)
    start = (
        f"exec /usr/bin/python3 -m pytest_pyairtable.standin --name a --port {port} "
        "--startup-delay $$(cat /w/delay)"
    )
    test = (  # (bash's /dev/tcp names the port: it gates the check)
        f"if bash -c ': 2>/dev/null >/dev/tcp/127.0.0.1/{port}'; then o=1; else o=0; fi; "
        f"exec /usr/bin/python3 /w/check.py {port} $$o"
    )
    body = service(
        "a",
        f"""
    command: ["/bin/sh", "-c", "{start}"]
    healthcheck: {{test: ["CMD-SHELL", "{test}"], interval: 300s, timeout: 10s, retries: 1}}""",
        mounts=(f"{work}:/w",),
    )
    project.compose("services:" + body + beside)
    project.tests(tests + "\n")


def boot(project: Project, delay: float) -> list[tuple[bool, bool]]:
    """One run of the project's test, the service opening its port after ``delay``:
    each run of its check as (port open as it began, passed)."""
    work = project.path / "w"
    (work / "delay").write_text(f"{delay}\n")
    (work / "runs").unlink(missing_ok=True)
    # a process of its own: in-process runs share what they imported with the next one
    project.run_subprocess("--pyairtable-backend", "compose").assert_outcomes(passed=1)
    lines = (work / "runs").read_text().split()
    return [(a == "1", b == "1") for a, b in zip(lines[::2], lines[1::2], strict=True)]


def openings(project: Project) -> list[float]:
    """The openings the project's one service has on record."""
    kept = json.loads((project.path / "cache/pytest-pyairtable/ready-times.json").read_text())
    ((entry,),) = [list(kept["services"][1].values())]
    return [float(t) for t in entry["open"]]


def test_a_check_runs_ahead_of_its_foreseen_port_and_a_miss_is_learnt(
    compose_project: Project, free_ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(compose_project.path / "cache"))
    (port,) = free_ports(1)
    foreseen_service(compose_project, port)
    first = boot(compose_project, 1.0)
    # nothing foreseen yet: the gate held every run until the port accepted
    assert first and all(open_ for open_, _ in first), first
    (opened,) = openings(compose_project)
    assert 1.0 <= opened < 3.0, opened

    second = boot(compose_project, 1.0)
    # the volley's first run began before the port accepted, and was the first to pass
    # (those still running when the service was ready ended with its container); the
    # opening was seen meanwhile, and kept (not only the boots that missed say it)
    assert second[0] == (False, True), second
    assert len(openings(compose_project)) == 2, openings(compose_project)

    slower = boot(compose_project, 3.0)
    # the volley ran at the old forecast and failed, every run of it: the gate's run
    # passed once the port accepted
    assert len(slower) >= 3 and slower[-1] == (True, True), slower
    assert all(ran == (False, False) for ran in slower[:-1]), slower
    assert openings(compose_project)[-1] >= opened + 1.0, openings(compose_project)


def test_a_service_nothing_waits_for_yet_is_not_run_ahead_of_its_opening(
    compose_project: Project, free_ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its opening is foreseen, but the test waits for another service first and
    nothing depends on it: runs ahead of its opening would only take the cores the
    awaited one starts on. Its check runs once its port accepts, as with no forecast
    (the test above shows the same service run ahead of it when it is awaited)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(compose_project.path / "cache"))
    port, other = free_ports(2)
    waited_first = standin("b", other, 3.0)  # the test's first fixture: ready after a
    foreseen_service(
        compose_project, port, waited_first, tests="def test_a(pyairtable_b, pyairtable_a): pass"
    )
    boot(compose_project, 1.0)
    assert len(openings(compose_project)) == 1  # foreseen from now on
    later = boot(compose_project, 1.0)
    assert later and all(open_ for open_, _ in later), later
    assert len(openings(compose_project)) == 2  # its opening still learnt


def test_forecasts_are_medians_of_recent_boots_kept_owner_only_without_any_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    inspected = {"Config": {"Image": "secret-image", "Cmd": ["serve", "--token=hunter2"]}}
    key = readyforecast.service_key("api", inspected, ("CMD", "curl", "http://x:1/"))
    for opened in (0.50, 0.52, 0.90, 0.51, 0.53, 0.54):
        times = ReadyTimes()
        times.observe(key, Seen(opened, 0.05))
        times.save()
    times = ReadyTimes()
    times.observe(key, Seen(None, 0.07))  # the port open at the first look: no opening
    times.observe(key, Seen(None, None))  # a foreseen pass: no cost of a gated run
    times.save()
    forecast = ReadyTimes().forecast(key)
    assert forecast is not None
    # the last KEPT_BOOTS openings (0.50 is gone), their median; the newest cost
    assert KEPT_BOOTS == 5
    assert forecast.opens_after == pytest.approx(0.53)
    assert forecast.spread == pytest.approx(0.90 - 0.51)
    assert forecast.cost == pytest.approx(0.07)
    path = tmp_path / "pytest-pyairtable" / "ready-times.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text()
    assert "secret-image" not in text and "hunter2" not in text and "api" not in text
    assert ReadyTimes().forecast("another service") is None


def test_runs_writing_forecasts_at_once_keep_each_others_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    one, other = ReadyTimes(), ReadyTimes()
    assert one.forecast("a") is None and other.forecast("b") is None  # both read before
    one.observe("a", Seen(0.4, 0.05))
    other.observe("b", Seen(0.6, 0.05))
    one.save()
    other.save()
    found = ReadyTimes()
    assert [found.forecast(k) is not None for k in ("a", "b")] == [True, True]


def test_a_check_that_waits_inside_itself_when_early_is_not_foreseen_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Its foreseen run passed long after the opening (its own retries held it): the
    gate's run, at the opening, would have been sooner."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    times = ReadyTimes()
    times.observe("a", Seen(0.5, 0.05))
    times.save()
    assert ReadyTimes().forecast("a") is not None
    times = ReadyTimes()
    times.observe("a", Seen(0.5, None, waits_inside=True))
    times.save()
    assert ReadyTimes().forecast("a") is None


def test_an_unreadable_or_edited_file_is_never_an_error_and_is_written_anew(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = tmp_path / "pytest-pyairtable" / "ready-times.json"
    path.parent.mkdir(parents=True)
    for text in ("{", '{"services": ["2", {"a": {"open": 5, "cost": "x"}}]}'):
        path.write_text(text)
        times = ReadyTimes()
        assert times.forecast("a") is None
        times.observe("a", Seen(0.5, 0.05))
        times.save()
        assert ReadyTimes().forecast("a") is not None


def test_forecasts_are_off_where_the_environment_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    times = ReadyTimes()
    times.observe("a", Seen(0.5, 0.05))
    times.save()
    monkeypatch.setenv("PYAIRTABLE_READY_FORECASTS", "0")
    off = ReadyTimes()
    assert off.forecast("a") is None
    off.observe("b", Seen(0.5, 0.05))
    off.save()
    monkeypatch.delenv("PYAIRTABLE_READY_FORECASTS")
    assert ReadyTimes().forecast("b") is None and ReadyTimes().forecast("a") is not None


def test_a_volley_spans_the_foreseen_openings_a_run_every_half_cost_and_is_bounded() -> None:
    from pytest_pyairtable.backends.readyforecast import VOLLEY_MAX, VOLLEY_SPEND, Forecast

    # openings 0.50-0.60 s after the start, a run costing 50 ms: the first run connects
    # about as the earliest opening, a run every 25 ms, the last just after the latest
    first, gap, runs = Forecast(opens_after=0.55, cost=0.05, spread=0.10).volley()
    assert gap == pytest.approx(0.025)
    assert first + 0.05 == pytest.approx(0.50)
    assert first + 0.05 + (runs - 1) * gap == pytest.approx(0.60 + gap)
    # one opening known (no spread yet): still a cost's width around it
    first, gap, runs = Forecast(opens_after=0.55, cost=0.05, spread=0.0).volley()
    assert first + 0.05 == pytest.approx(0.525) and runs == 4
    # openings far apart: no more than VOLLEY_MAX runs
    assert Forecast(opens_after=2.0, cost=0.04, spread=3.0).volley()[2] == VOLLEY_MAX
    # a costly check: no more than VOLLEY_SPEND seconds of runs, and two at least
    assert Forecast(opens_after=2.0, cost=0.1, spread=3.0).volley()[2] == VOLLEY_SPEND / 0.1
    assert Forecast(opens_after=2.0, cost=0.7, spread=3.0).volley()[2] == 2
