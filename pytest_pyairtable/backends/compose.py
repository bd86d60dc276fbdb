"""The compose backend: every service is a container of the project's compose file, on
whatever engine DOCKER_HOST or the current context points at.

Built on pytest-docker: its ``DockerComposeExecutor`` runs compose, ``Services.port_for``
reads back published ports, ``get_docker_ip`` says where the engine's ports are. Each
service is started on its own (``up -d --no-deps``) the moment its dependencies allow,
so the DAG start and partial stacks hold as with local processes. The project name is
``pyairtable-run-<pid>-<random>``: unique per run (never the PID alone), and a later run
removes projects whose pytest is gone, unless a kept stack's record names them.
Containers are found by compose's project label, never by name (v1 and v2 name them
differently). A kept stack is recorded as its project and container ids: stopping and
removing it needs the docker CLI only, not the compose file or its variables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import shutil
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import PrerequisiteError
from ..freeports import PortHolds
from ..model.probespec import derive_probe
from ..model.spec import PortMapping, ServiceSpec
from ..probes.checks import Probe, ProbeContext
from . import ownership
from .base import BaseBackend, Running
from .containers import (
    PROJECT_LABEL,
    ContainerService,
    EngineHealthProbe,
    check_engine,
    detect_compose,
    remove_stale_projects,
    run_quiet,
)
from .reaper import ReaperClient, remove_project


class ComposeBackend(BaseBackend):
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
        port_holds: PortHolds | None = None,
        **_: Any,
    ) -> None:
        from pytest_docker.plugin import DockerComposeExecutor, Services, get_docker_ip

        super().__init__()
        check_engine()
        self.command, found = (
            (compose_command, compose_command) if compose_command else detect_compose()
        )
        self.port_holds = port_holds
        if port_holds is not None and port_holds.chosen:  # compose reads the file itself
            assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in port_holds.environ().items())
            self.command = f"env {assignments} {self.command}"
        # Not pyairtable-<pid>-...: earlier versions, which may run on the same engine,
        # remove such a project once its pid is gone, kept or not.
        self.project = project_name or f"pyairtable-run-{run_id}"
        self.notices.append(f"compose backend: {found}, project {self.project}")
        for project in remove_stale_projects():
            self.notices.append(f"removed the containers of {project}, left by a killed run")
        base = ownership.temp_base()
        ownership.sweep([base])
        self._reaper: ReaperClient | None = ReaperClient()  # removes the project if pytest dies
        self._reaper.tell(f"project {self.project}")
        self.executor = DockerComposeExecutor(self.command, [str(compose_file)], self.project)
        self.services = Services(self.executor)
        self.docker_ip = get_docker_ip()
        self.build = build
        self.cleanup_volumes = cleanup_volumes
        self.cleanup = cleanup or ["down --remove-orphans" + (" -v" if cleanup_volumes else "")]
        self._own_logs = logs_dir is None
        self.logs_dir = logs_dir or base / f"pyairtable-{run_id}-logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if self._own_logs:
            self.logs_dir.chmod(0o700)  # logs hold what services print, secrets too
            ownership.claim(self.logs_dir, run_id, "logs")
            self._reaper.tell(f"dir {self.logs_dir}")
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

    def prepare(self, services: Sequence[ServiceSpec]) -> None:
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
        ids = run_quiet(
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
        if self.port_holds is not None:  # the engine binds them now
            self.port_holds.release(m.host for m in svc.ports if m.host)
        log_path = self.logs_dir / f"{svc.name}.log"
        ownership.private_file(log_path)
        created = self._created.get(svc.name)
        created_ok = created is not None and created.wait(300)
        if (
            created_ok
            and (cid := self._container(svc.name))
            and run_quiet(["docker", "start", cid]).returncode == 0
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
        running = ContainerService(svc.name, cid, log_path)
        self.started.append(running)
        return running

    def resolve(self, svc: ServiceSpec, running: Running) -> ServiceSpec:
        """Ports as the engine published them (an unpublished host port gets an ephemeral
        one, read back with port_for), and the engine's address for a remote DOCKER_HOST.
        Idempotent: a spec resolved before (a kept stack's) comes back the same."""
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

    def probe(self, svc: ServiceSpec, running: Running, ctx: ProbeContext) -> Probe | None:
        if svc.probe.kind == "command" and isinstance(running, ContainerService):
            return EngineHealthProbe(running)
        return None

    def close(self, *, keep_stack: Path | None = None, keep_logs: bool = False) -> None:
        for batch in self._batches:  # no creation may race the clean-up
            batch.join(120)
        if self._reaper is not None:
            self._reaper.done()
        if keep_stack is not None:  # the containers and their log followers go on
            if self._own_logs:
                ownership.mark(self.logs_dir, kept=str(keep_stack))
            for running in self.started:
                running.let_go()
            return
        for subcommand in self.cleanup:
            with contextlib.suppress(PrerequisiteError):
                self.compose(subcommand)
        # `down` skips services of profiles not active now: remove by the project's label.
        remove_project(self.project, volumes=self.cleanup_volumes)
        for running in self.started:
            running.end_follower()
        if self._own_logs and keep_logs:
            ownership.mark(self.logs_dir, retained="its logs were kept, for a post-mortem")
        elif self._own_logs:
            shutil.rmtree(self.logs_dir, ignore_errors=True)

    # -- a kept stack ----------------------------------------------------------------

    def kept_state(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "logs_dir": str(self.logs_dir),
            "own_logs": self._own_logs,
            "cleanup_volumes": self.cleanup_volumes,
            "docker_ip": self.docker_ip,
        }

    @classmethod
    def reattach(cls, state: Mapping[str, Any], run_id: str, **options: Any) -> ComposeBackend:
        """Over a kept project: the docker CLI only, no compose file (nor its variables)."""
        check_engine()
        backend = cls.__new__(cls)
        BaseBackend.__init__(backend)
        backend.project = str(state["project"])
        backend.logs_dir = Path(state["logs_dir"])
        backend._own_logs = bool(state.get("own_logs", True))
        backend.cleanup_volumes = bool(options.get("volumes")) or bool(state.get("cleanup_volumes"))
        backend.cleanup = []  # `compose down` would need the file and its variables
        backend.docker_ip = str(state.get("docker_ip", "127.0.0.1"))
        backend._reaper = None
        backend.port_holds = None
        backend._batches = []
        backend.started = []
        return backend

    def adopt(self, svc: ServiceSpec, state: Mapping[str, Any]) -> ContainerService:
        return ContainerService(
            svc.name, str(state["cid"]), self.logs_dir / f"{svc.name}.log", follow=False
        )
