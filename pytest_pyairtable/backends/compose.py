"""The compose backend: every service is a container of the project's compose file(s),
on the engine the docker CLI would use (DOCKER_HOST, a Docker context), else Podman's.

The images come first, all at once (images.py): pulled through the Engine API with their
progress, or built by compose, as compose's pull_policy and build: rules say; a service
whose image is at hand waits for none of it. Compose itself (its CLI) creates the
containers, networks and volumes: those are its semantics, with every compose file of
the stack and its env file. Everything after that goes through the Engine API
(dockerapi.py, engines.py for what differs between engines): start, stop, kill, wait,
logs, exec, and the event stream that says when a container started, died or changed
health. Each service starts the moment its dependencies allow, so the DAG start and
partial stacks hold as with local processes; readiness is judged where the service lives
(healthexec.py), or by a host-side probe where one is given.

Compose's exit code is not trusted (the PyPI wrapper exits 0 on errors): a call worked
when the engine shows its result. The project name is
``pyairtable-run-<pid>-<random>-v2``: unique per run; a later run of the same stack
removes its projects whose pytest is gone, unless they are a kept stack's. A kept stack
is recorded as its project and container ids: stopping and removing it needs the
Engine API only, not the compose file.

(Over 350 lines: one backend's whole life, from the engine's client to a kept stack,
reads best in one place; the parts it drives live in engines, images (pulls, builds),
composecli, composecreate (the containers, made ahead), containers and healthexec.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..model.probespec import derive_probe
from ..model.spec import PortMapping, ServiceSpec
from ..probes.checks import Probe, ProbeContext
from ..probes.waiting import port_watch
from ..support.errors import PrerequisiteError
from ..support.files import create_private
from . import healthgate, markers, readyforecast, sockets
from .base import BackendOptions, BaseBackend, HeldPorts, Running, log_size
from .builds import Builder, remove_run_names
from .composecli import ComposeCommand, creation_error
from .composecreate import Creation
from .composedetect import detect_compose
from .containers import ContainerService, remove_project, remove_stale_projects
from .containerstates import ContainerStates
from .dockerapi import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    LogFollower,
    engine_host,
    last_line_stamp,
    latest_stamp,
)
from .engines import Engine, Location, connect, engine_call, explanation, locate, stream_client
from .fetch import Fetch
from .healthexec import ContainerHealthcheck, HealthTest
from .images import Images
from .reaper import ReaperClient


class ComposeBackend(BaseBackend):
    name = "compose"
    owns_services = True
    where = "container"
    # pytest-docker's overridable fixtures and their defaults: a suite that overrides one
    # keeps its setting with this backend. (Its default project name is the PID, which
    # gives each xdist worker its own stack: that one default is not followed.)
    frontend_fixtures: ClassVar[Mapping[str, tuple[str, Any]]] = {
        "docker_compose_command": ("compose_command", "docker compose"),
        "docker_compose_project_name": ("project_name", f"pytest{os.getpid()}"),
        "docker_cleanup": ("cleanup", ["down -v"]),
    }

    def __init__(
        self,
        *,
        run_id: str,
        compose_file: Path,
        compose_files: Sequence[Path] = (),
        env_file: Path | None = None,
        profiles: Sequence[str] = (),
        logs_dir: Path | None = None,
        project_name: str | None = None,
        compose_command: str | None = None,
        build: str = "auto",
        cleanup_volumes: bool = False,
        cleanup: Sequence[str] | None = None,
        port_holds: HeldPorts | None = None,
        owner: markers.Owner | None = None,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.owner = owner  # the stack whose projects and directories these are
        found_compose: list[tuple[list[str], str]] = []
        detecting = threading.Thread(  # two CLI calls: beside the engine's, not after them
            target=lambda: found_compose.append(detect_compose(compose_command)), daemon=True
        )
        detecting.start()
        self.port_holds = port_holds  # compose reads the file itself: it gets them
        # Neither pyairtable-<pid>-... nor pyairtable-run-<pid>-<hex>: earlier versions,
        # which may run on the same engine, remove such a project once its pid is gone,
        # whichever project's it is.
        self.project = project_name or f"pyairtable-run-{run_id}-v2"
        self._base = base = markers.temp_base()  # (before the engine's thread sweeps it)
        self._start_engine()
        self._sweeper: threading.Thread | None = threading.Thread(
            target=markers.sweep, args=([base], owner), daemon=True
        )
        self._sweeper.start()  # what killed runs left: not in the first container's way
        detecting.join()
        if not found_compose:
            detect_compose(compose_command)  # raises what stopped the thread
        argv, found = found_compose[0]
        self.notices.insert(0, f"compose backend: {found}, project {self.project}")
        self._reaper: ReaperClient | None = ReaperClient()  # removes the project if pytest dies
        found = self.location.environ.get("DOCKER_HOST", "") if self.location else ""
        self._reaper.tell(f"project {self.project} {found}".rstrip())  # found by us: its host
        # The run's own marked directory: it says whether the run was kept, also once a
        # kept stack's record is gone (whatever --pyairtable-logs-dir is).
        self.run_dir = markers.make_dir(base, f"pyairtable-run-{run_id}-", run_id, "run", owner)
        self._reaper.tell(f"dir {self.run_dir}")
        self.compose: ComposeCommand | None = ComposeCommand(
            argv,
            list(compose_files) or [compose_file],
            env_file,
            self.project,
            profiles,
            environ={
                **(port_holds.environ() if port_holds is not None else {}),
                **(self.location.environ if self.location is not None else {}),
            },
        )
        self.build = build
        self.images = Images(  # pulled and built before their services need them
            location=self.location,
            engine=self._client,
            builder=Builder(self.compose, self.location, self._log_file),
            project=self.project,
            build=build,
        )
        self.cleanup_volumes = cleanup_volumes
        # pytest-docker's docker_cleanup, when a suite overrides it
        self.cleanup = list(cleanup) if cleanup is not None else None
        self._own_logs = logs_dir is None
        self.logs_dir = logs_dir or base / f"pyairtable-{run_id}-logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if self._own_logs:
            self.logs_dir.chmod(0o700)  # logs hold what services print, secrets too
            markers.claim(self.logs_dir, run_id, "logs", owner)
            self._reaper.tell(f"dir {self.logs_dir}")
        self.started: list[ContainerService] = []
        self._followers: dict[str, LogFollower] = {}  # a restarted service's log goes on
        self.creation: Creation | None = Creation(
            self.compose, self.images, self.logs_dir, self._wake_states
        )
        self.ready_times = readyforecast.ReadyTimes()

    def _start_engine(self) -> None:
        """Where the engine is (cheap: compose must be pointed at the same one); its
        client (importing the SDK, connecting, subscribing to events) is made beside
        compose's start-up and its first container, not before them."""
        self.api: Any = None
        self.streams: Any = None  # the client of long-lived streams (events, logs)
        self.engine: Engine | None = None
        self.states: ContainerStates | None = None
        self.docker_ip = "127.0.0.1"
        self._engine_error: BaseException | None = None
        self._engine_ready = threading.Event()
        self.location: Location | None = None
        try:
            self.location = locate()
        except PrerequisiteError as exc:  # an unknown context: said where it is needed
            self._engine_error = exc
        self._engine: threading.Thread | None = threading.Thread(
            target=self._connect_engine, name="pyairtable-engine", daemon=True
        )
        self._engine.start()

    @classmethod
    def create(cls, options: BackendOptions) -> ComposeBackend:
        return cls(
            run_id=options.run_id,
            compose_file=options.compose_file,
            compose_files=options.compose_files,
            env_file=options.env_file,
            profiles=options.profiles,
            logs_dir=options.logs_dir,
            project_name=options.docker.project_name,
            compose_command=options.docker.compose_command,
            build=options.build,
            cleanup_volumes=options.cleanup_volumes,
            cleanup=options.docker.cleanup,
            port_holds=options.port_holds,
            owner=markers.Owner.of(options.compose_file),
        )

    def _connect_engine(self) -> None:
        try:
            if self.location is None:  # locate() failed: its error is raised on launch
                return
            api, engine = connect(self.location)
            streams = stream_client(api, engine)
            states = ContainerStates(api, self.project, engine, streams)
            states.list_created(api)  # what compose created before the subscription
            self.api, self.streams, self.engine = api, streams, engine
            self.states, self.docker_ip = states, engine_host(api)
            self.notices.append(f"engine: {engine.describe()}")
            if engine.exit_deadlock:  # said before it happens: afterwards nothing answers
                self.notices.append(f"engine: {engine.exit_deadlock}")
            self._engine_ready.set()  # what killed runs left is removed beside the launches
            for project in remove_stale_projects(api, self.owner, self._base):
                self.notices.append(f"removed the containers of {project}, left by a killed run")
        except BaseException as exc:  # raised where the engine is first needed
            if not self._engine_ready.is_set():
                self._engine_error = exc
        finally:
            self._engine_ready.set()

    def _engine_up(self) -> None:
        """Until the engine's client is made; what stopped it, raised."""
        self._engine_ready.wait()
        if self._engine_error is not None:
            raise self._engine_error

    def _client(self) -> tuple[Any, Engine]:
        """The SDK's client and the engine, once connected; what stopped it, raised."""
        self._engine_up()
        assert self.engine is not None
        return self.api, self.engine

    def _log_file(self, service: str) -> Path:
        path = self.logs_dir / f"{service}.log"
        create_private(path)  # 0600: logs hold what services print
        return path

    def _wake_states(self) -> None:
        """A batch of containers is created: a launch awaiting a create event that will
        not come (compose made none) looks again."""
        if self.states is not None:
            self.states.wake()

    def prepare(self, services: Sequence[ServiceSpec]) -> None:
        """Their images and containers, ahead of their launches (composecreate.py)."""
        if self.creation is not None:  # (a kept stack's containers exist already)
            self.creation.prepare(services)

    def _container(self, name: str) -> str | None:
        found = self.api.containers(
            all=True,
            filters={"label": [f"{PROJECT_LABEL}={self.project}", f"{SERVICE_LABEL}={name}"]},
        )
        return str(found[0]["Id"]) if found else None

    def launch(self, svc: ServiceSpec) -> ContainerService:
        if self.port_holds is not None:  # the engine binds them now
            self.port_holds.release(m.host for m in svc.ports if m.host)
        # An engine that answers otherwise than expected is named with the call, never
        # "an internal error".
        with engine_call(self.engine, f"service '{svc.name}': launching its container"):
            return self._launch(svc)

    def _launch(self, svc: ServiceSpec) -> ContainerService:
        if self.compose is None:  # a kept stack's: its own container again
            return self._relaunch(svc)
        assert self.creation is not None  # (the compose file's stack, not a kept one)
        self.creation.prepare([svc])  # (nothing more where it has begun)
        waited = self.images.fetch_of(svc.name)
        if waited is not None and waited.wait() and waited.error is not None:
            fix = f" Fix: {waited.fix}." if waited.fix else ""
            raise PrerequisiteError(f"service '{svc.name}' {waited.error}.{fix}")
        done = self.creation.done(svc.name)
        self._engine_up()
        assert self.states is not None
        cid = self.states.await_created(svc.name, done.is_set, 600)
        if cid is None and done.wait(600):  # its create event was not seen: ask
            cid = self._container(svc.name)
        if cid is None:  # whatever compose's exit code said, it made no container
            raise PrerequisiteError(
                creation_error(svc.name, self.creation.output(svc.name), self.compose.shown)
            )
        return self._start(svc, cid)

    def _relaunch(self, svc: ServiceSpec) -> ContainerService:
        """A service of a kept stack started again (`pyairtable restart`): its existing
        container, as `docker compose restart` does; no compose file is read, so an
        edited one takes effect at the next `up`. Its log goes on from where it ended."""
        cid = self._container(svc.name)
        if cid is None:
            raise PrerequisiteError(
                f"service '{svc.name}': its container in project {self.project} is gone "
                "(removed outside pyairtable), so it cannot be restarted. "
                "Fix: `pyairtable down`, then `pyairtable up` to create it again."
            )
        if self.states is None:  # events from now on: the start and, later, the stop
            assert self.engine is not None
            self.streams = self.streams or stream_client(self.api, self.engine)
            self.states = ContainerStates(self.api, self.project, self.engine, self.streams)
        ended = (self.api.inspect_container(cid).get("State") or {}).get("FinishedAt")
        # The engine stamps a line when it reads it, which on a loaded machine comes after
        # the process ended: the last line's stamp, not FinishedAt, is where its log ends
        # (the kept stack's handed-over follower has written up to there).
        since = latest_stamp(_stamp(ended), last_line_stamp(self.api, cid))
        return self._start(svc, cid, log_since=since)

    def _start(self, svc: ServiceSpec, cid: str, log_since: str | None = None) -> ContainerService:
        """Start its container; its log followed from where the previous follower (or,
        for a kept container, ``log_since``) left off."""
        assert self.states is not None
        starts = self.states.starts(cid)
        before = self._followers.get(svc.name)
        if before is not None:
            # The stopped container's stream ends by itself; on a loaded machine it may
            # not have yet, and one that went on would follow the next run too (its lines
            # twice, beside the new follower's): it ends before the container starts.
            before.join(3)
            before.close()
        try:
            self.api.start(cid)
            started_at = time.monotonic()
        except Exception as exc:  # the engine's reason (a port taken, a missing mount)
            raise PrerequisiteError(
                f"service '{svc.name}': the engine could not start its container: "
                f"{explanation(exc)}. Fix: see the reason; the container is {cid[:12]}."
            ) from None
        self.states.await_start(cid, starts)
        log_path = self._log_file(svc.name)
        since = log_since or (before.last if before is not None else None)
        log_start = log_size(log_path)  # a restart's log goes on after the earlier run's
        running = ContainerService(
            self.api, svc.name, cid, log_path, self.states, policy=svc.restart
        )
        running.log_start = log_start
        running.started_at = started_at
        running.first_wait = True
        after = running.next_run if svc.restart.mode != "no" else None  # each run's output
        follower = LogFollower(
            self.streams or self.api,
            cid,
            log_path,
            since,
            environ=self.location.environ if self.location is not None else {},
            next_run=after,
            precise_stamps=self.engine is None or self.engine.log_stamps_precise,
            written=before.repeated if before is not None and not log_since else 0,
        )
        running.follower = self._followers[svc.name] = follower
        running.refresh()
        self.started.append(running)
        return running

    def resolve(self, svc: ServiceSpec, running: Running) -> ServiceSpec:
        """Ports as the engine published them (an unpublished host port gets an ephemeral
        one, read back), and the engine's address for a remote DOCKER_HOST. Idempotent:
        a spec resolved before (a kept stack's) comes back the same."""
        published = (
            (running.inspected.get("NetworkSettings") or {}).get("Ports") or {}
            if isinstance(running, ContainerService)
            else {}
        )
        ports = tuple(
            PortMapping(m.container, m.host or _host_port(published, m.container), m.host_ip)
            for m in svc.ports
        )
        resolved = dataclasses.replace(svc, ports=ports)
        if not svc.extension.get("probe"):  # derived, not given: derive again from real ports
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

    def identity_problem(self, svc: ServiceSpec, running: Running) -> str | None:
        """On the host's network (network_mode: host) the container's own processes
        hold its listening socket: another program on the same port answers a probe
        just as well. A published port is the engine's mapping to the container."""
        if not isinstance(running, ContainerService) or not _host_network(running):
            return None
        watch = port_watch(svc.probe.kind, svc.probe.target)
        pid = int((running.inspected.get("State") or {}).get("Pid") or 0)
        pids = sockets.namespace_pids(pid) if watch is not None and pid else None
        if watch is None or pids is None:
            return None
        host, port = watch.address
        foreign = sockets.foreign_listeners(port, host, pids)
        if not foreign:
            return None
        for other in list(self.started):  # a check through another of this run's services
            other_pid = int((other.inspected.get("State") or {}).get("Pid") or 0)
            foreign -= sockets.sockets_of(sockets.namespace_pids(other_pid) or set())
        if not foreign:
            return None
        return (
            f"port {port} answers, but not from this service's container: it is held by "
            f"{sockets.holder_of(port, host, inodes=foreign)}"
        )

    def probe(self, svc: ServiceSpec, running: Running, ctx: ProbeContext) -> Probe | None:
        """The container's own healthcheck, run inside it, unless a host-side probe is
        known: one given in x-pyairtable.probe, or a PostgreSQL/Redis protocol probe on
        a port the host can reach."""
        if not isinstance(running, ContainerService) or svc.extension.get("probe"):
            return None
        reachable = _host_network(running) or bool(svc.ports)
        if svc.probe.kind in ("postgres", "redis") and reachable:
            return None
        test = HealthTest.of(running.inspected, svc.compose.get("healthcheck"))
        if test is None:
            return None
        pid = int((running.inspected.get("State") or {}).get("Pid") or 0)
        own_names = (svc.name, *_container_names(running))
        watch = healthgate.gate(
            test.test, host_network=_host_network(running), pid=pid, own_names=own_names
        )
        # Foreseen only where the test names its port (a run ahead of another port's
        # opening could pass before it accepts), and only a launch's first wait.
        foreseen = watch is not None and running.first_wait
        running.first_wait = False
        published = port_watch(svc.probe.kind, svc.probe.target) if reachable else None
        if watch is None and published is not None:  # the probe's port, where the test says none
            watch = healthgate.PortGate(published.address)
        verdicts = self.engine is None or self.engine.has_health_verdicts
        return ContainerHealthcheck(
            self.api,
            running,
            test,
            watch,
            engine_verdicts=verdicts,
            ready_times=self.ready_times if foreseen else None,
            ready_key=readyforecast.service_key(svc.name, running.inspected, test.test)
            if foreseen
            else "",
            awaited=ctx.awaited,
        )

    def fetch(self, svc: ServiceSpec) -> Fetch | None:
        """The pull or build ``svc`` waits for (begun by ``prepare``), None when its image
        is there; its planning's error (no engine) raised."""
        if self.compose is None:  # a kept stack's containers have their images
            return None
        self.prepare([svc])  # (nothing more where it has begun)
        return self.images.fetch_of(svc.name)

    def fetches(self) -> list[Fetch]:
        return self.images.fetches() if self.compose is not None else []

    def close(self, *, keep_stack: Path | None = None, keep_logs: bool = False) -> None:
        if self.compose is not None:
            self.images.close()  # a pull or build still running ends now
        self._join_helpers()
        self.ready_times.save()  # (never raises)
        if self._reaper is not None:
            self._reaper.done()
        if self.api is None:  # no engine answered: nothing was started on it
            markers.remove_dir(self.run_dir, self.run_id)
            if self._own_logs:
                markers.remove_dir(self.logs_dir, self.run_id)
            return
        if keep_stack is not None:  # the containers and their log followers go on
            # which containers are the stack: its directories stay while they run
            markers.mark(self.run_dir, kept=str(keep_stack), engine_project=self.project)
            if self._own_logs:
                markers.mark(self.logs_dir, kept=str(keep_stack))
            for running in self.started:
                running.let_go()
            self._stop_events()
            return
        try:
            self._remove()
        except PrerequisiteError:  # the engine is stuck: what is left is said, logs kept
            if self._own_logs:
                self.notices.append(markers.retain_logs(self.logs_dir))
            raise
        markers.remove_dir(self.run_dir, self.run_id)
        if self._own_logs and keep_logs:
            self.notices.append(markers.retain_logs(self.logs_dir))
        elif self._own_logs:
            markers.remove_dir(self.logs_dir, self.run_id)
        if not keep_logs and self._sweeper is not None:  # a run that went well: not `down`
            markers.sweep([self._base], self.owner, retained_too=True)  # a failed run's logs

    def _remove(self) -> None:
        """What `down` removes, by the project's label: also services of profiles that
        are not active now, which `down` would skip. The log followers and the event
        stream end whatever the engine answers."""
        for subcommand in self.cleanup or ():
            with contextlib.suppress(PrerequisiteError):
                assert self.compose is not None  # a kept stack's has no cleanup override
                self.compose.run(shlex.split(subcommand))
        left = (
            f"its containers are left: a later run of this stack removes them, as does "
            f"`docker compose -p {self.project} down` once the engine answers"
        )
        try:
            with engine_call(self.engine, f"removing the run's project {self.project}", left):
                remove_project(self.api, self.project, volumes=self.cleanup_volumes)
                remove_run_names(self.api, self.project)  # names of images built for it
        finally:
            for running in self.started:
                running.end_follower()
            self._stop_events()

    def _join_helpers(self) -> None:
        if self.creation is not None:  # no creation may race the clean-up
            self.creation.join(600)
        for thread in (self._sweeper, self._engine):
            if thread is not None:
                thread.join(60)

    def _stop_events(self) -> None:
        if self.states is not None:
            self.states.close()
        self.api.close()  # its pooled connections
        if self.streams is not None:
            self.streams.close()

    # -- a kept stack ----------------------------------------------------------------

    def kept_state(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "run_dir": str(self.run_dir),
            "logs_dir": str(self.logs_dir),
            "own_logs": self._own_logs,
            "cleanup_volumes": self.cleanup_volumes,
            "docker_ip": self.docker_ip,
        }

    @classmethod
    def reattach(
        cls, state: Mapping[str, Any], run_id: str, *, volumes: bool = False
    ) -> ComposeBackend:
        """Over a kept project: the Engine API only, no compose file (nor its variables)."""
        backend = cls.__new__(cls)
        BaseBackend.__init__(backend)
        backend.location = locate()
        backend.api, backend.engine = connect(backend.location)
        backend.streams = None  # made with the first restart's event stream
        backend.project = str(state["project"])
        backend.run_id = run_id
        backend.owner = None  # it stops the kept stack; it sweeps nothing else
        backend.run_dir = Path(state["run_dir"])
        backend.logs_dir = Path(state["logs_dir"])
        backend._own_logs = bool(state.get("own_logs", True))
        backend.cleanup_volumes = volumes or bool(state.get("cleanup_volumes"))
        backend.cleanup = None
        backend.docker_ip = str(state.get("docker_ip", "127.0.0.1"))
        backend.states = None  # adopted containers are inspected: their events were not seen
        backend._reaper = None
        backend._sweeper = None
        backend._engine = None
        backend._engine_error = None
        backend._engine_ready = threading.Event()
        backend._engine_ready.set()
        backend.port_holds = None
        backend.creation = None
        backend.started = []
        backend.compose = None  # no compose file: a restart starts the kept container
        backend._followers = {}
        backend.ready_times = readyforecast.ReadyTimes()  # a restart's boot is seen too
        return backend

    def adopt(self, svc: ServiceSpec, state: Mapping[str, Any]) -> ContainerService:
        adopted = ContainerService(
            self.api, svc.name, str(state["cid"]), self.logs_dir / f"{svc.name}.log", None
        )
        with contextlib.suppress(Exception):  # gone: poll says so
            adopted.refresh()
        return adopted


def _container_names(running: ContainerService) -> tuple[str, ...]:
    """The names the container answers to itself: its hostname and its name."""
    config = running.inspected.get("Config") or {}
    names = (str(config.get("Hostname") or ""), str(running.inspected.get("Name") or ""))
    return tuple(name.lstrip("/") for name in names if name.lstrip("/"))


def _host_network(running: ContainerService) -> bool:
    return (running.inspected.get("HostConfig") or {}).get("NetworkMode") == "host"


def _host_port(published: Mapping[str, Any], container: int) -> int | None:
    for key in (f"{container}/tcp", f"{container}/udp"):
        for binding in published.get(key) or ():
            if binding.get("HostPort"):
                return int(binding["HostPort"])
    return None


def _stamp(moment: Any) -> str | None:
    """An engine time (RFC 3339) as log stamps are, or None for the zero time."""
    text = str(moment or "")
    return None if not text or text.startswith("0001-") else text
