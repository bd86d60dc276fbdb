"""One set of cases for every backend (local, compose, external): the capabilities the
core calls, declared by the protocol, behave the same way behind each of them.

The compose cases skip, saying why, where no Docker engine answers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from stackrun import listening
from test_compose import IMAGE, ROOT, engine, our_containers  # noqa: F401 (a fixture)

from conftest import unique_run_id
from pytest_pyairtable.backends.base import Backend, Running, backend_class
from pytest_pyairtable.model.spec import ServiceSpec, load_stack
from pytest_pyairtable.probes.checks import ProbeContext, make_probe
from pytest_pyairtable.probes.waiting import wait_ready

Ports = Callable[[int], list[int]]


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
        backend = backend_class(self.name)(
            run_id=unique_run_id("compliance"), compose_file=self.compose_file
        )
        self.made.append(backend)
        return backend


def _compose_text(name: str, web: int, job_ok: str, job_bad: str) -> str:
    python = "/usr/bin/python3" if name == "compose" else sys.executable
    standin = [python, "-m", "pytest_pyairtable.standin", "--name", "web", "--port", str(web)]
    container = (
        f"""
    image: {IMAGE}
    network_mode: host
    volumes: ["/usr:/usr:ro", "{ROOT}:/app:ro"]
    environment: {{PYTHONPATH: /app}}
    stop_grace_period: 5s"""
        if name == "compose"
        else "\n    image: x\n    stop_grace_period: 5s"
    )
    url = f'\n      url: "http://127.0.0.1:{web}"' if name == "external" else ""
    return (
        textwrap.dedent("services:")
        + f"""
  web:{container}
    command: {standin}
    x-pyairtable:
      local: {{command: {standin}}}
      probe: {{http: "http://127.0.0.1:{web}/health"}}{url}
  job-ok:{container}
    command: ["/bin/sh", "-c", "{job_ok}"]
    x-pyairtable: {{local: {{command: ["/bin/sh", "-c", "{job_ok}"]}}}}
  job-bad:{container}
    command: ["/bin/sh", "-c", "{job_bad}"]
    x-pyairtable: {{local: {{command: ["/bin/sh", "-c", "{job_bad}"]}}}}
"""
    )


@pytest.fixture(params=["local", "compose", "external"])
def kit(request: pytest.FixtureRequest, tmp_path: Path, free_ports: Ports) -> Iterator[Kit]:
    name = request.param
    if name == "compose":
        request.getfixturevalue("engine")  # skips without an engine
    (web,) = free_ports(1)
    path = tmp_path / "docker-compose.yml"
    path.write_text(_compose_text(name, web, "echo done", "echo broken; exit 3"))
    stack = load_stack(path, environ={})
    if name == "external":
        from pytest_pyairtable.backends.external import with_urls

        stack = with_urls(stack, {})
    # A run id of this pytest's own: a fixed one named the same compose project in
    # every run, so two suites on one engine (CI beside a developer) removed or
    # recreated each other's containers, and the leak check below saw none of them.
    first = backend_class(name)(run_id=unique_run_id("compliance"), compose_file=path)
    made = Kit(name, path, dict(stack.services), first, [first])
    if name == "external":  # someone else runs it
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
    if name == "compose":
        assert [c for c in our_containers() if "compliance" in c] == []


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
    running = kit.backend.launch(kit.services["web"])
    assert isinstance(running, Running)
    kit.backend.prepare([kit.services["web"]])  # a no-op where nothing is to prepare
    wait_until_ready(kit.backend, kit.services["web"], running)
    running.sync_logs()  # always callable: a no-op where logs are written directly
    assert running.poll() is None
    running.stop(5)


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
    kit.backend.close(keep_stack=True)
    kit.made.remove(kit.backend)

    again = type(kit.backend).reattach(state, unique_run_id("compliance"))
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
