"""The heal after a fault on containers: dependents that exited during the fault come
back in dependency order, a `restart: true` dependent is restarted with its dependency,
as on host processes (test_faults.py)."""

from __future__ import annotations

from containers import IMAGE, standin

from conftest import Ports, Project

# A worker that needs its upstream and exits 1 when it stops answering (as many do).
WORKER = """
import sys, time, urllib.request
url, starts = sys.argv[1], sys.argv[2]

def answers():
    try:
        return urllib.request.urlopen(url, timeout=1).status == 200
    except OSError:
        return False

deadline = time.monotonic() + 20
while not answers():  # started with its upstream (service_started): wait until it answers
    assert time.monotonic() < deadline
    time.sleep(0.02)
open(starts, "a").write("started\\n")
print("worker: connected", flush=True)
while answers():
    time.sleep(0.05)
print("worker: lost its upstream", flush=True)
sys.exit(1)
"""


def test_a_heal_on_containers_brings_back_dependents_that_exited(
    compose_project: Project, free_ports: Ports
) -> None:
    up, api = free_ports(2)
    work = compose_project.path
    (work / "worker.py").write_text(WORKER)
    compose_project.compose(
        "services:"
        + standin("up", up)
        + standin(
            "api",
            api,
            extra="\n    depends_on: {up: {condition: service_started, restart: true}}",
        )
        + f"""
  worker:
    image: {IMAGE}
    network_mode: host
    volumes: ["/usr:/usr:ro", "{work}:/work"]
    command: ["/usr/bin/python3", "/work/worker.py", "http://127.0.0.1:{up}/health", "/work/starts.txt"]
    depends_on: {{up: {{condition: service_started}}}}
    x-pyairtable: {{probe: {{log: "worker: connected"}}}}"""
    )
    compose_project.tests(f"""
        import pathlib, time

        def test_stop_upstream(pyairtable_worker, pyairtable_api, pyairtable_faults):
            pyairtable_faults.stop("up")
            deadline = time.monotonic() + 30
            log = pathlib.Path(pyairtable_worker.log_path)
            while "lost its upstream" not in log.read_text():  # it noticed, and exited
                assert time.monotonic() < deadline
                time.sleep(0.02)

        def test_the_worker_is_back(pyairtable_worker, pyairtable_up):
            assert pathlib.Path({str(work / "starts.txt")!r}).read_text().count("started") == 2
    """)
    result = compose_project.run("--pyairtable-backend", "compose", "-p", "no:randomly", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*heal: up was stopped by the fault; restarted, ready in*",
            "*heal: api depends on up with restart: true; restarted, ready in*",
            "*heal: worker exited 1 during the fault (log: *lost its upstream*); restarted, ready in*",
        ]
    )
