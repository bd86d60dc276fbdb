"""The main job: ``pytest --pyairtable-up`` on the repo's own docker-compose.yml.

Runs the real dev stack file (ten services, seven tiers) on free ports, waits for the
URL table, presses Ctrl-C, and checks the reverse-order shutdown left nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from devstack_file import PORT_VARS, SECRETS
from stackrun import PYTEST_ARGS

from conftest import Background, Ports, wait_until
from pytest_pyairtable.model.spec import load_stack

ROOT = Path(__file__).resolve().parent.parent
SERVICES_BY_PORT_VAR = [v.removesuffix("_PORT").lower().replace("_", "-") for v in PORT_VARS]
TIERS = {
    "postgres": 1,
    "redis": 1,
    "airtable-gateway": 2,
    "platform-services": 2,
    "mcp-server": 3,
    "automation-services": 4,
    "llm-orchestrator": 4,
    "saga-orchestrator": 5,
    "api-gateway": 6,
    "frontend": 7,
}


def dev_env(ports: list[int]) -> dict[str, str]:
    env = {**os.environ, **SECRETS, **dict(zip(PORT_VARS, map(str, ports), strict=True))}
    env.update(STANDIN_DELAY="0.1", PYTHONUNBUFFERED="1")
    return env


def test_pyairtable_up_boots_the_dev_stack_and_stops_on_ctrl_c(
    free_ports: Ports, tmp_path: Path, background: Background
) -> None:
    ports = free_ports(len(PORT_VARS))
    out_path = tmp_path / "out.txt"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--pyairtable-up",
        *PYTEST_ARGS,
        "--pyairtable-env-file",
        os.devnull,
        "--rootdir",
        str(ROOT),
        "-c",
        str(ROOT / "pyproject.toml"),
        "--pyairtable-timeline",
        str(tmp_path / "timeline.json"),
        # pytest's own temp dirs (the repo's addopts start xdist, whose controller makes
        # one) beside the test's files, not in the temp root whose leftovers are checked
        f"--basetemp={tmp_path / 'basetemp'}",
    ]
    with open(out_path, "w") as out:
        proc = background(cmd, cwd=ROOT, env=dev_env(ports), stdout=out, stderr=subprocess.STDOUT)
    wait_until(
        lambda: "Press Ctrl-C" in out_path.read_text() or proc.poll() is not None,
        timeout=120,
        what="the URL table",
    )
    assert proc.poll() is None, out_path.read_text()
    # the repo's addopts say -n auto, but a dev stack runs no tests: no xdist worker
    # starts (each would collect the whole suite on the CPUs the stack boots on)
    assert xdist_workers(proc.pid) == []
    import httpx

    health = httpx.get(f"http://127.0.0.1:{ports[-1]}/api/health").json()
    assert health["status"] == "healthy"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    text = out_path.read_text()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("service ")) + 2
    table = {row[0]: row[1:] for row in map(str.split, lines[start : start + len(TIERS)])}
    assert {name: row[1] for name, row in table.items()} == {n: str(t) for n, t in TIERS.items()}
    assert all(row[-1] == "ready" for row in table.values()), table
    for name, port in zip(SERVICES_BY_PORT_VAR, ports, strict=True):
        assert f"127.0.0.1:{port}" in table[name][0]
    assert table["postgres"][0].startswith("postgresql://admin:***@")
    assert "stopped 10 services" in text
    for secret in SECRETS.values():
        assert secret not in text
    # reverse order on the way down: each service stopped before its dependencies began
    stack = load_stack(
        ROOT / "docker-compose.yml", env_file=Path(os.devnull), environ=dev_env(ports)
    )
    events = json.loads((tmp_path / "timeline.json").read_text())["traceEvents"]
    stopping = {e["args"]["service"]: e for e in events if e["name"].endswith(" stopping")}
    assert set(stopping) == set(TIERS)
    for name, svc in stack.services.items():
        for dep in svc.depends_on:
            done = stopping[name]["ts"] + stopping[name]["dur"]
            assert done <= stopping[dep.name]["ts"], (name, dep.name)


def xdist_workers(pid: int) -> list[int]:
    """The children of ``pid`` that execnet started (xdist's workers)."""
    from execnet.gateway_io import popen_bootstrapline

    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child) for child in children if popen_bootstrapline.encode() in _cmdline(int(child))
    ]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone
        return b""


def test_pyairtable_graph_prints_the_seed_tiers() -> None:
    env = {**os.environ, **SECRETS}
    done = subprocess.run(
        [sys.executable, "-m", "pytest_pyairtable.cli", "graph"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tier 1  postgres")
    assert lines[-1].startswith("tier 7  frontend") and "needs: api-gateway" in lines[-1]
    assert len(lines) == 10


@pytest.mark.parametrize("missing", ["POSTGRES_PASSWORD", "JWT_SECRET"])
def test_cli_lists_missing_variables(missing: str, tmp_path: Path) -> None:
    env = {k: v for k, v in {**os.environ, **SECRETS}.items() if k != missing}
    done = subprocess.run(
        [sys.executable, "-m", "pytest_pyairtable.cli", "--env-file", os.devnull, "graph"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert missing in done.stderr and "required variable(s) missing" in done.stderr
