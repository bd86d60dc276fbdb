"""One set of cases for every backend of the registry: the capabilities the core calls,
declared by the protocols, behave the same way behind each of them; and every member of
the protocols is exercised here (``COVERED``), so a new capability comes with its case.

The compose cases skip, saying why, where no Docker engine answers."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from containers import IMAGE, ROOT, our_containers
from stackrun import listening

from conftest import Ports, unique_run_id, wait_until
from pytest_pyairtable.backends import BACKENDS
from pytest_pyairtable.backends.base import (
    Backend,
    BackendOptions,
    DockerOverrides,
    Placement,
    Running,
    backend_class,
    log_size,
)
from pytest_pyairtable.backends.portclaims import claims_dir
from pytest_pyairtable.model.spec import ServiceSpec, load_stack
from pytest_pyairtable.probes.checks import ProbeContext, make_probe
from pytest_pyairtable.probes.waiting import wait_ready


@dataclass(frozen=True)
class Case:
    """How a backend's services are written for these tests, and what it is expected to do."""

    container: bool  # its services are containers (the image, host network, /usr mounted)
    external: bool  # its services run elsewhere: the test starts them and gives their URLs
    finds_missing_commands: bool  # preflight names a command that is not installed
    saves_server_data: bool  # it can snapshot a Redis or PostgreSQL it runs (job snapshots)


# Every backend of the registry has its case (test_every_registered_backend_has_a_case).
CASES = {
    "local": Case(
        container=False, external=False, finds_missing_commands=True, saves_server_data=True
    ),
    "compose": Case(
        container=True, external=False, finds_missing_commands=False, saves_server_data=False
    ),
    "external": Case(
        container=False, external=True, finds_missing_commands=False, saves_server_data=False
    ),
}


@dataclass
class Kit:
    """A backend under test, the services it can run, and what the test started itself."""

    name: str
    compose_file: Path
    services: dict[str, ServiceSpec]
    backend: Backend
    made: list[Backend] = field(default_factory=list)
    outside: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def fresh(self) -> Backend:
        backend = _create(self.name, self.compose_file)
        self.made.append(backend)
        return backend


def _create(name: str, compose_file: Path) -> Backend:
    options = BackendOptions(run_id=unique_run_id("compliance"), compose_file=compose_file)
    return backend_class(name).create(options)


def _compose_text(name: str, web: int, job_ok: str, job_bad: str) -> str:
    case = CASES[name]
    python = "/usr/bin/python3" if case.container else sys.executable
    standin = [python, "-m", "pytest_pyairtable.standin", "--name", "web", "--port", str(web)]
    container = (
        f"""
    image: {IMAGE}
    network_mode: host
    volumes: ["/usr:/usr:ro", "{ROOT}:/app:ro"]
    stop_grace_period: 5s"""
        if case.container
        else "\n    image: x\n    stop_grace_period: 5s"
    )
    url = f'\n      url: "http://127.0.0.1:{web}"' if case.external else ""
    env = "\n    environment: {PYTHONPATH: /app}" if case.container else ""
    return (
        textwrap.dedent("services:")
        + f"""
  web:{container}
    restart: always
    command: {standin}
    environment: {{GREETING: hello{", PYTHONPATH: /app" if case.container else ""}}}
    x-pyairtable:
      local: {{command: {standin}}}
      probe: {{http: "http://127.0.0.1:{web}/health"}}{url}
  job-ok:{container}{env}
    command: ["/bin/sh", "-c", "{job_ok}"]
    x-pyairtable: {{local: {{command: ["/bin/sh", "-c", "{job_ok}"]}}}}
  flaky:{container}{env}
    restart: "on-failure:2"
    command: ["/bin/sh", "-c", "echo run; exit 3"]
    x-pyairtable: {{local: {{command: ["/bin/sh", "-c", "echo run; exit 3"]}}}}
  job-bad:{container}{env}
    command: ["/bin/sh", "-c", "{job_bad}"]
    x-pyairtable: {{local: {{command: ["/bin/sh", "-c", "{job_bad}"]}}}}
"""
    )


@pytest.fixture(params=list(BACKENDS))
def kit(request: pytest.FixtureRequest, tmp_path: Path, free_ports: Ports) -> Iterator[Kit]:
    yield from compliance_kit(request.param, request, tmp_path, free_ports)


def compliance_kit(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, free_ports: Ports
) -> Iterator[Kit]:
    """The kit of backend ``name`` (also for the same cases on another engine:
    test_podman.py)."""
    case = CASES[name]
    if case.container:
        request.getfixturevalue("engine")  # skips without an engine
    claims_before, watchers_before = _claims_held_here(), _restart_watchers()
    (web,) = free_ports(1)
    path = tmp_path / "docker-compose.yml"
    path.write_text(_compose_text(name, web, "echo done", "echo broken; exit 3"))
    stack = backend_class(name).adapt(load_stack(path, environ={}), Placement())
    # A run id of this pytest's own: a fixed one named the same compose project in
    # every run, so two suites on one engine (CI beside a developer) removed or
    # recreated each other's containers, and the leak check below saw none of them.
    first = _create(name, path)
    made = Kit(name, path, dict(stack.services), first, [first])
    if case.external:  # someone else runs it
        made.outside.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pytest_pyairtable.standin",
                    "--name",
                    "web",
                    "--port",
                    str(web),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
    yield made
    for backend in made.made:
        backend.close()
    for proc in made.outside:
        proc.terminate()
        proc.wait()
    if case.container:
        assert [c for c in our_containers() if "compliance" in c] == []
    # Nothing of the kit's backends acts past their close: a restart policy's watcher
    # (which notices its end within a second) started a service again and claimed its
    # port anew, a claim no close released, that a later run in this process met.
    watchers = _restart_watchers() - watchers_before
    wait_until(lambda: not any(t.is_alive() for t in watchers), 5, "restart watchers to end")
    assert _claims_held_here() - claims_before == set()


def _claims_held_here() -> set[str]:
    """The port claim files this process has open (a held claim is an open file)."""
    folder, held = f"{claims_dir()}/", set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own fd, closed meanwhile
        if target.startswith(folder):
            held.add(target)
    return held


def _restart_watchers() -> set[threading.Thread]:
    """The live watchers of services under a restart policy (supervise.py)."""
    return {t for t in threading.enumerate() if t.name == "pyairtable-restart"}


def wait_until_ready(backend: Backend, spec: ServiceSpec, running: Running) -> ServiceSpec:
    spec = backend.resolve(spec, running)
    ctx = ProbeContext(running.log_path, 2.0)
    probe = backend.probe(spec, running, ctx) or make_probe(spec.probe, ctx)
    try:
        wait_ready(probe, budget=60 + probe.extra_budget, alive=lambda: None)
    finally:
        probe.close()
    return spec


def test_every_backend_and_service_satisfies_the_protocols(kit: Kit) -> None:
    assert isinstance(kit.backend, Backend)
    assert kit.backend.name == kit.name  # what a kept record names, to find it again
    assert all(isinstance(note, str) for note in [*kit.backend.notices, *kit.backend.notes])
    running = kit.backend.launch(kit.services["web"])
    assert isinstance(running, Running)
    kit.backend.prepare([kit.services["web"]])  # a no-op where nothing is to prepare
    wait_until_ready(kit.backend, kit.services["web"], running)
    running.sync_logs()  # always callable: a no-op where logs are written directly
    assert running.poll() is None
    # a healthcheck run on the host sees what the service declares, as its container would
    assert kit.backend.command_env(kit.services["web"])["GREETING"] == "hello"
    running.stop(5)


def test_a_service_waits_for_what_it_runs_before_its_launch(kit: Kit) -> None:
    """What a service runs (an image) is fetched from ``prepare`` on; here it is there
    already (the test image; a process runs what is installed), so nothing is fetched or
    it ends at once, and every fetch of the run is listed."""
    spec = kit.services["web"]
    kit.backend.prepare([spec])
    fetch = kit.backend.fetch(spec)
    if fetch is not None:
        assert fetch.wait(60) and fetch.error is None, fetch.error
    assert all(f.kind in ("pull", "build") for f in kit.backend.fetches())
    assert (fetch is None) or fetch in kit.backend.fetches()
    running = kit.backend.launch(spec)
    wait_until_ready(kit.backend, spec, running)
    running.stop(5)


def test_a_service_launched_again_is_probed_on_its_own_output(kit: Kit) -> None:
    spec = kit.services["web"]
    first = kit.backend.launch(spec)
    spec = wait_until_ready(kit.backend, spec, first)
    first.stop(5)
    first.sync_logs()
    written = log_size(first.log_path)  # its log goes on: a log probe reads from here
    again = kit.backend.launch(spec)
    assert again.log_start == written
    wait_until_ready(kit.backend, spec, again)
    again.stop(5)


def test_what_a_running_service_printed_is_in_its_log_once_synced(kit: Kit) -> None:
    """At once where the service writes its log file itself; where its lines arrive late
    (``logs_late``: an engine's log, followed), once ``sync_logs`` caught up with all it
    wrote before now (the engine reads a container's output a little late: under load,
    later than the probe that saw it ready)."""
    running = kit.backend.launch(kit.services["web"])
    wait_until_ready(kit.backend, kit.services["web"], running)
    assert running.logs_late is CASES[kit.name].container
    running.sync_logs(time.time())
    if not CASES[kit.name].external:  # (someone else's service: no log of ours)
        assert running.log_path is not None
        assert "web: listening on" in running.log_path.read_text()
    running.stop(5)


def test_a_backend_says_what_is_missing_before_a_start(kit: Kit) -> None:
    spec = kit.services["job-ok"]
    missing = dataclasses.replace(
        spec, local=dataclasses.replace(spec.local, command=("no-such-command-here", "x"))
    )
    problems = type(kit.backend).preflight([missing, kit.services["web"]])
    assert all("service 'job-ok'" in problem for problem in problems), problems
    assert bool(problems) is CASES[kit.name].finds_missing_commands
    assert "no-such-command-here" in "".join(problems) or not problems


def test_a_backend_adapts_the_stack_to_given_urls(kit: Kit) -> None:
    stack = load_stack(kit.compose_file, environ={})
    url = "http://127.0.0.1:1"
    adapted = type(kit.backend).adapt(stack, Placement(urls={"job-ok": url}))
    if CASES[kit.name].external:  # the given URL is where the service is probed
        assert adapted.services["job-ok"].url == url
    else:  # the URLs are for services someone else runs: nothing of a started stack changes
        assert adapted == stack


def test_a_backends_frontend_fixtures_name_its_typed_overrides(kit: Kit) -> None:
    fields = {f.name for f in dataclasses.fields(DockerOverrides)}
    for fixture, (field_name, _default) in type(kit.backend).frontend_fixtures.items():
        assert fixture and field_name in fields, (fixture, field_name)


def test_a_backend_saves_a_servers_data_and_starts_it_from_that(
    kit: Kit, tmp_path: Path, free_ports: Ports
) -> None:
    """What a job's snapshot is made of: where a backend can save a server's data, a
    server started from it holds that data; where it cannot, it says None (its jobs run)."""
    import redis

    (port,) = free_ports(1)
    path = tmp_path / "servers.yml"
    path.write_text(f"services:\n  cache: {{image: redis:7, ports: ['{port}:6379']}}\n")
    spec = type(kit.backend).adapt(load_stack(path, environ={}), Placement()).services["cache"]
    assert kit.backend.server_data(kit.services["job-ok"]) is None  # no server: nothing to save
    data = kit.backend.server_data(spec)
    if not CASES[kit.name].saves_server_data:
        assert data is None
        return
    assert data is not None and data.identity
    saved = tmp_path / "saved"
    saved.mkdir()
    first = _create(kit.name, kit.compose_file)
    try:
        running = first.launch(spec)
        wait_until_ready(first, spec, running)
        with redis.Redis(port=port) as client:
            client.set("migrated", "yes")
        data = first.server_data(spec)
        assert data is not None
        data.save(running, saved)
        running.stop(5)
    finally:
        first.close()  # its data dir goes: the next start is a cold boot's
    again = kit.fresh()
    seeded = again.server_data(spec)
    assert seeded is not None and seeded.identity == data.identity
    seeded.seed(saved)
    running = again.launch(spec)
    wait_until_ready(again, spec, running)
    with redis.Redis(port=port) as client:
        assert client.get("migrated") == b"yes"
    running.stop(5)


def test_every_registered_backend_has_a_case() -> None:
    assert set(CASES) == set(BACKENDS)


# What the cases above exercise, per protocol: a member added to a protocol fails this
# until a case exercises it too.
COVERED = {
    Backend: {
        "notices", "notes", "name", "owns_services", "frontend_fixtures", "create", "preflight",
        "adapt", "reattach", "where", "launch", "prepare", "fetch", "fetches", "resolve",
        "probe", "command_env", "close", "kept_state", "adopt", "identity_problem", "tracking",
        "server_data",
    },
    Running: {
        "log_path", "log_start", "logs_late", "policy_restarts", "poll", "wait", "stop", "end",
        "kill", "pause", "resume", "sync_logs", "kept_state",
    },
}  # fmt: skip


@pytest.mark.parametrize("protocol", [Backend, Running], ids=lambda p: p.__name__)
def test_the_cases_cover_every_member_of_the_protocols(protocol: type) -> None:
    members = {
        name
        for name in [*vars(protocol), *getattr(protocol, "__annotations__", {})]
        if not name.startswith("_")
    }
    assert members == COVERED[protocol]


def test_a_service_pauses_resumes_and_stops(kit: Kit) -> None:
    spec = kit.services["web"]
    running = kit.backend.launch(spec)
    spec = wait_until_ready(kit.backend, spec, running)
    port = spec.probe.target.rsplit(":", 1)[1].split("/")[0]
    running.pause()
    running.resume()
    wait_until_ready(kit.backend, spec, running)
    running.stop(5)
    if kit.backend.owns_services:
        assert running.poll() is not None and not listening(int(port))
    else:  # never stop what someone else runs
        assert running.poll() is None and listening(int(port))


def test_a_service_ended_with_its_stack_is_gone_with_its_last_words_logged(kit: Kit) -> None:
    """``end`` (the stack going away) may return before the backend's own record says
    the service ended (an engine's die event comes later): it is gone all the same, and
    once synced its log has what it printed on its way out, as after ``stop``."""
    spec = kit.services["web"]
    running = kit.backend.launch(spec)
    spec = wait_until_ready(kit.backend, spec, running)
    port = int(spec.probe.target.rsplit(":", 1)[1].split("/")[0])
    running.end(5)
    if not kit.backend.owns_services:  # never stop what someone else runs
        assert running.poll() is None and listening(port)
        running.stop(5)
        return
    assert not listening(port)
    running.sync_logs()
    assert running.poll() is not None
    assert running.log_path is not None and "web: stopped" in running.log_path.read_text()


def test_what_answers_a_ready_service_is_its_own(kit: Kit) -> None:
    """A service's own server passes the identity check; the tracking is said (or "")."""
    spec = kit.services["web"]
    running = kit.backend.launch(spec)
    spec = wait_until_ready(kit.backend, spec, running)
    assert kit.backend.identity_problem(spec, running) is None
    assert isinstance(kit.backend.tracking(), str)
    if not CASES[kit.name].external and not CASES[kit.name].container:
        assert kit.backend.tracking().startswith(("a cgroup per service", "process groups"))
    running.stop(5)


def test_a_killed_service_is_gone(kit: Kit) -> None:
    spec = kit.services["web"]
    running = kit.backend.launch(spec)
    wait_until_ready(kit.backend, spec, running)
    running.kill()
    if kit.backend.owns_services:
        assert running.wait(10) is not None
    else:
        assert running.poll() is None


def test_a_job_reports_its_exit_code(kit: Kit) -> None:
    if not kit.backend.owns_services:
        pytest.skip("the external backend runs nothing: it has no jobs of its own")
    ok = kit.backend.launch(kit.services["job-ok"])
    bad = kit.backend.launch(kit.services["job-bad"])
    assert ok.wait(60) == 0
    assert bad.wait(60) == 3
    bad.sync_logs()
    assert bad.log_path is not None and "broken" in bad.log_path.read_text()


def test_a_restart_policy_restarts_as_the_engine_does(kit: Kit) -> None:
    """on-failure:2: started again twice after exit code 3, then the exit is final;
    and web's `restart: always` never fights a stop or a kill (the cases above)."""
    if not kit.backend.owns_services:
        pytest.skip("the external backend runs nothing: restart policies are someone else's")
    flaky = kit.backend.launch(kit.services["flaky"])
    assert flaky.wait(60) == 3
    codes = [code for _, code in flaky.policy_restarts()]
    engine = getattr(kit.backend, "engine", None)
    if engine is not None and engine.kind == "Podman":
        # Podman's event stream drops a restart's events now and then: the engine's own
        # count still says how many runs there were, and their exit codes are unknown (-1)
        assert len(codes) == 2 and set(codes) <= {3, -1}, codes
    else:
        assert codes == [3, 3]
    flaky.sync_logs()
    assert flaky.log_path is not None and flaky.log_path.read_text().count("run") == 3


def test_a_kept_service_is_adopted_from_its_record_and_stopped(kit: Kit) -> None:
    import json

    spec = kit.services["web"]
    running = kit.backend.launch(spec)
    job = kit.backend.launch(kit.services["job-ok"]) if kit.backend.owns_services else None
    spec = wait_until_ready(kit.backend, spec, running)
    if job is not None:
        assert job.wait(60) == 0
    # what the backend records must survive JSON, as it is written to a file
    state: dict[str, Any] = json.loads(json.dumps(kit.backend.kept_state()))
    services = json.loads(
        json.dumps({"web": running.kept_state(), **({"job-ok": job.kept_state()} if job else {})})
    )
    kit.backend.close(keep_stack=kit.compose_file.parent / ".pyairtable" / "record.json")
    kit.made.remove(kit.backend)

    # as `pyairtable down` does: under the kept run's id, which its directories' markers name
    run_id = getattr(kit.backend, "run_id", None) or unique_run_id("compliance")  # external: none
    again = type(kit.backend).reattach(state, run_id, volumes=False)
    kit.made.append(again)
    adopted = again.adopt(spec, services["web"])
    assert adopted.poll() is None  # still running, found from the record alone
    wait_until_ready(again, spec, adopted)
    if job is not None:
        assert again.adopt(kit.services["job-ok"], services["job-ok"]).poll() == 0
    adopted.stop(5)
    port = int(spec.probe.target.rsplit(":", 1)[1].split("/")[0])
    assert listening(port) is (not again.owns_services)
    again.close()
