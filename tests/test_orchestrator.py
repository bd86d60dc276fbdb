"""The scheduler's correctness, read from its recorded timeline: real processes, no mocks."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Ports, unique_run_id
from pytest_pyairtable.backends.local import LocalBackend
from pytest_pyairtable.engine.orchestrator import Listener, Orchestrator, ServiceRun, State, Timing
from pytest_pyairtable.model.spec import load_stack
from pytest_pyairtable.support.errors import ServiceTimeoutError, UnknownServiceError


def standin(
    name: str, port: int, delay: float = 0.3, deps: str = "", stop_delay: float = 0.0
) -> str:
    """A stand-in service; ``stop_delay``: it takes that long to end on SIGTERM (a stop
    that lasts, so that two stops at once overlap however the threads are scheduled)."""
    healthy = ", ".join(
        f"{d.strip()}: {{condition: service_healthy}}" for d in deps.split(",") if d
    )
    depends = f"\n    depends_on: {{{healthy}}}" if deps else ""
    run = f"python -m pytest_pyairtable.standin --name {name} --port {port} --startup-delay {delay}"
    if stop_delay:
        run = (
            f'["sh", "-c", "{run} & pid=$$!; '
            f"trap 'sleep {stop_delay}; kill $$pid; wait $$pid; exit 0' TERM; wait $$pid\"]"
        )
    return f"""
  {name}:
    image: x{depends}
    x-pyairtable:
      local: {{command: {run}}}
      probe: {{http: "http://127.0.0.1:{port}/health"}}"""


class Recorder(Listener):
    def __init__(self) -> None:
        self.before_stop_calls: list[str] = []

    def before_stop(self, run: ServiceRun) -> None:
        self.before_stop_calls.append(run.name)


@pytest.fixture
def make(tmp_path: Path, free_ports: Ports) -> Iterator[Callable[..., Orchestrator]]:
    made: list[Orchestrator] = []

    def build(services: str, **timing: float) -> Orchestrator:
        path = tmp_path / "docker-compose.yml"
        path.write_text("services:" + services)
        orch = Orchestrator(
            load_stack(path, environ={}),
            LocalBackend(run_id=unique_run_id("orch")),
            timing=Timing(**timing),
            listener=Recorder(),
        )
        made.append(orch)
        return orch

    yield build  # stops before free_ports checks its ports, which it depends on
    for orch in made:
        orch.stop()


def test_dag_start_order_overlap_and_reverse_parallel_stop(
    make: Callable[..., Orchestrator], free_ports: Ports
) -> None:
    a, b, c, d = free_ports(4)
    # a and b are independent roots; c needs both; d needs c.
    orch = make(
        standin("a", a, stop_delay=1)
        + standin("b", b, stop_delay=1)
        + standin("c", c, deps="a, b")
        + standin("d", d, deps="c")
    )
    orch.start()
    handle = orch.wait("d")
    assert handle.tier == 3
    runs = orch.runs
    for name, deps in {"c": ["a", "b"], "d": ["c"]}.items():
        for dep in deps:  # a service starts only after its dependencies are ready
            assert runs[name].starting_at >= runs[dep].ready_at  # type: ignore[operator]
    # independent services run their start-up at the same time
    assert runs["a"].starting_at < runs["b"].ready_at and runs["b"].starting_at < runs["a"].ready_at  # type: ignore[operator]
    orch.stop()
    for name, deps in {"c": ["a", "b"], "d": ["c"]}.items():
        for dep in deps:  # reverse order along edges
            assert runs[name].stopped_at <= runs[dep].stop_began  # type: ignore[operator]
    # ... and in parallel where there is no edge: a and b stop together
    assert (
        runs["a"].stop_began < runs["b"].stopped_at and runs["b"].stop_began < runs["a"].stopped_at
    )  # type: ignore[operator]
    assert all(r.state is State.STOPPED for r in runs.values())
    assert sorted(orch.listener.before_stop_calls) == ["a", "b", "c", "d"]  # type: ignore[attr-defined]


def test_what_follows_a_stop_does_not_hold_up_the_next_stop(
    make: Callable[..., Orchestrator], free_ports: Ports
) -> None:
    """A stopped service's after-work (its log saved: ``after_service_stop``) runs beside
    its dependencies' stops, not before them: on a chain, each stop would otherwise wait
    for the one before's log copy. Here the dependent's after-work waits until its
    dependency has stopped, which it can only do if the stop is not waiting for it.
    What is said of the stops (``service_stopped``) still follows their order, though
    the dependent's after-work is still going when its dependency has stopped."""
    a, b = free_ports(2)
    said: list[str] = []
    a_stopped = threading.Event()

    class AfterWork(Recorder):
        def service_stopped(self, run: ServiceRun) -> None:
            said.append(run.name)
            if run.name == "a":
                a_stopped.set()

        def after_service_stop(self, run: ServiceRun) -> None:
            if run.name == "b":
                self.saw_a_stop = a_stopped.wait(10)

    orch = make(standin("a", a, 0) + standin("b", b, 0, deps="a"))
    orch.listener = listener = AfterWork()
    orch.start()
    orch.wait("b")
    orch.stop()
    assert listener.saw_a_stop
    assert orch.runs["b"].stopped_at <= orch.runs["a"].stop_began  # type: ignore[operator]
    assert listener.before_stop_calls == ["b", "a"]
    assert said == ["b", "a"]


def test_a_service_is_awaited_by_its_waiters_and_by_dependents_not_yet_started(
    make: Callable[..., Orchestrator], free_ports: Ports
) -> None:
    """What a probe may spend on being early for (a volley ahead of a port's foreseen
    opening) only serves a service something waits for: a dependent held back by it, or
    a caller of wait()/settle(). A leaf nobody has asked for yet is not awaited."""
    a, b, c = free_ports(3)
    orch = make(standin("a", a, 30) + standin("b", b, 0, deps="a") + standin("c", c, 30))
    orch.start(["b", "c"])
    assert orch.awaited("a")  # b waits for it
    assert not orch.awaited("b") and not orch.awaited("c")
    assert not orch.settle("c", 0.01)  # a test's fixture asks for c: from now on, awaited
    assert orch.awaited("c") and not orch.awaited("b")
    orch.stop()


def test_starts_only_the_closure(make: Callable[..., Orchestrator], free_ports: Ports) -> None:
    a, b, c = free_ports(3)
    orch = make(standin("a", a, 0) + standin("b", b, 0, deps="a") + standin("c", c, 0))
    assert orch.start(["b"]) == ["a", "b"]
    orch.wait("b")
    assert set(orch.runs) == {"a", "b"}
    with pytest.raises(
        UnknownServiceError, match=r"unknown service\(s\) nope.*active services are: a, b, c"
    ):
        orch.start(["nope"])


def test_concurrent_starts_launch_each_service_once(
    make: Callable[..., Orchestrator], free_ports: Ports, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under xdist the stack's owner answers each worker on its own thread, so two
    workers' first tests call start() at once. Each service must be launched once: a
    second launch is a second process on the same port, or a migration run twice.
    The two calls are made to meet once each has asked whether it has a service yet
    (the one interleaving that matters, which real timing hits only now and then)."""
    a, b, c = free_ports(3)
    orch = make(standin("a", a, 0) + standin("b", b, 0, deps="a") + standin("c", c, 0))
    meet = threading.Barrier(2, timeout=1)  # asked under a lock: the other never comes
    met: set[int] = set()

    class MeetingRuns(dict[str, ServiceRun]):
        def __contains__(self, name: object) -> bool:
            answer = super().__contains__(name)
            if threading.get_ident() not in met:  # each caller's first answer, held back
                met.add(threading.get_ident())
                with contextlib.suppress(threading.BrokenBarrierError):
                    meet.wait()
            return answer

    orch.runs = MeetingRuns()
    launched: Counter[str] = Counter()
    real_launch = orch.backend.launch

    def counted_launch(svc: Any) -> Any:
        launched[svc.name] += 1
        return real_launch(svc)

    monkeypatch.setattr(orch.backend, "launch", counted_launch)
    claimed: list[list[str]] = []
    callers = [threading.Thread(target=lambda: claimed.append(orch.start())) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(30)
    assert sorted(map(sorted, claimed)) == [[], ["a", "b", "c"]]  # one caller claimed all
    for name in ("a", "b", "c"):
        orch.wait(name)
    assert launched == {"a": 1, "b": 1, "c": 1}


def test_tier_wait_time_is_honoured_when_set(
    make: Callable[..., Orchestrator], free_ports: Ports
) -> None:
    a, b = free_ports(2)
    orch = make(standin("a", a, 0) + standin("b", b, 0, deps="a"), tier_wait_time=0.5)
    orch.start()
    orch.wait("b")
    assert orch.runs["b"].starting_at >= 0.5  # type: ignore[operator]


def test_max_startup_time_bounds_every_wait(
    make: Callable[..., Orchestrator], free_ports: Ports
) -> None:
    (a,) = free_ports(1)
    orch = make(standin("a", a, delay=30), max_startup_time=0.3)
    orch.start()
    with pytest.raises(ServiceTimeoutError, match=r"MAX_STARTUP_TIME \(0.3s\) ran out"):
        orch.wait("a")


def test_stop_while_starting_cancels_the_rest(
    make: Callable[..., Orchestrator], free_ports: Ports
) -> None:
    a, b = free_ports(2)
    orch = make(standin("a", a, delay=30) + standin("b", b, 0, deps="a"))
    orch.start()
    orch.stop()
    assert orch.runs["b"].state is State.CANCELLED and orch.runs["b"].running is None
    assert orch.runs["a"].running is not None and orch.runs["a"].running.poll() is not None


def test_timeline_files(
    make: Callable[..., Orchestrator], free_ports: Ports, tmp_path: Path
) -> None:
    import json

    from pytest_pyairtable.engine.timeline import write_timeline

    a, b, c = free_ports(3)
    orch = make(standin("a", a, 0.2) + standin("b", b, 0.2, deps="a") + standin("c", c, 0))
    orch.start()
    orch.wait("b")
    orch.wait("c")
    orch.stop()
    write_timeline(orch, tmp_path / "t.json")
    trace = json.loads((tmp_path / "t.json").read_text())
    starting = {
        e["args"]["service"]: e for e in trace["traceEvents"] if e["name"].endswith(" starting")
    }
    assert set(starting) == {"a", "b", "c"}
    assert starting["b"]["ts"] >= starting["a"]["ts"] + starting["a"]["dur"]  # after a was ready
    assert starting["a"]["args"]["critical"] and starting["b"]["args"]["critical"]
    assert not starting["c"]["args"]["critical"]
    assert all(e["ph"] in ("X", "M") for e in trace["traceEvents"])
    write_timeline(orch, tmp_path / "t.html")
    page = (tmp_path / "t.html").read_text()
    assert page.count('<div class="row">') == 3
    assert page.count('class="bar critical"') == 2 and page.count('class="bar start"') == 1
    assert "a → b" in page
