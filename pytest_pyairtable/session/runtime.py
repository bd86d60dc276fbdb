"""The one object both front ends drive: the lazy spec, the orchestrator (or a kept
stack to attach to), handles, and the end: stop, or keep.

Free of pytest: the plugin keeps one in ``config.stash``, the `pyairtable` command
makes one per command. Everything that reads or runs a stack is imported where it is
used: a test run that needs no service pays for none of it (see topology.py).

(Just over 350 lines: the lazy loading and the run's end share one lock and one
notion of "loaded"; the parts it drives live in their own modules.)
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model import graph
from ..support.errors import ConfigError, KeepError, PyAirtableError
from ..support.redact import Redactor, secret_values
from .hookevents import HookEvents, own_hooks
from .runfiles import RunFiles
from .settings import Settings, flag_value

if TYPE_CHECKING:
    from ..backends.base import BaseBackend, DockerOverrides, Placement
    from ..backends.measure import ServiceCoverage
    from ..engine.orchestrator import Handle, Orchestrator
    from ..engine.snapshots import NoSnapshots
    from ..model.spec import ServiceSpec, StackSpec
    from ..probes.checks import Probe, ProbeContext
    from ..state.jobinputs import Digest, InputsProblem
    from .kept import Foreground, KeptStack
    from .ports import PortHolds

Say = Callable[[str], None]


def runtime_for(
    settings: Settings,
    rootdir: Path,
    invocation_dir: Path,
    hook: Any = None,
    *,
    walk_up: bool = False,
) -> Runtime:
    """A runtime for the compose file(s) the settings name (else COMPOSE_FILE, else
    compose's default names at rootdir, and with ``walk_up`` in its parents, as the
    compose command looks for them); read fully only when a test (or command) needs the
    stack, and a broken file becomes the runtime's error."""
    from ..model.project import compose_files_source, find_compose_files

    given = settings.compose_file
    env_file = invocation_dir / settings.env_file if settings.env_file else None
    error: ConfigError | None = None
    try:
        files = find_compose_files(
            given, invocation_dir, os.environ, search=rootdir, walk_up=walk_up
        )
    except ConfigError as exc:
        files, error = (), exc
    compose = files[0] if files else rootdir / "docker-compose.yml"
    runtime = Runtime(settings, hook, compose_file=compose, env_file=env_file, compose_files=files)
    given_from = settings.sources["compose_file"] if given else ""
    runtime.compose_source = compose_files_source(given_from, invocation_dir, os.environ)
    missing = [f for f in files if not os.path.lexists(f)]  # the loader says what else
    if error is None and missing:
        error = ConfigError(
            f"compose file {missing[0]} not found. Fix: pass --pyairtable-compose-file "
            "or set pyairtable_compose_file in your ini file."
        )
    if error is not None or not files:
        runtime.preset(None, error)
    if error is None and not files:
        runtime.searched = rootdir
    return runtime


class Runtime:
    def __init__(
        self,
        settings: Settings,
        hook: Any = None,
        *,
        compose_file: Path,
        env_file: Path | None = None,
        compose_files: tuple[Path, ...] = (),
    ) -> None:
        self.settings = settings
        self.hook = hook if hook is not None else own_hooks()
        self.compose_file = compose_file  # the first file: the kept stack's record is beside it
        self.compose_files = compose_files or (compose_file,)  # merged in this order
        self.compose_source = ""  # how they were chosen, for the header
        self.env_file = env_file
        self._loaded = False
        self._stack: StackSpec | None = None
        self._error: PyAirtableError | None = None
        self._redactors: dict[bool, Redactor] = {}  # by whether the stack was read
        self._quiet: Redactor | None = None  # redact_all's, before the stack was read
        self._topology: dict[str, list[str]] | None = None
        self.docker: DockerOverrides | None = None  # pytest-docker's fixtures a suite overrode
        self.coverage: ServiceCoverage | None = None  # the run measures coverage (measure.py)
        self._backend_class: type[BaseBackend] | None = None
        self._placement: Placement | None = None
        self.orch: Orchestrator | None = None
        self.job_inputs: dict[str, Digest | InputsProblem] = {}  # the boot's, of its jobs
        self.searched: Path | None = None  # where no compose file was found
        self.ports: PortHolds | None = None  # --pyairtable-free-ports
        redact = lambda text: self.redact(text)  # noqa: E731, PLW0108 - it changes once the stack is read
        self.events = HookEvents(self.hook, redact, settings.debug)
        self.needed: set[str] = set()
        self._say: Say | None = None
        self.progress: Callable[[Orchestrator], None] | None = None  # a live display
        self.alert: Callable[[str], None] | None = None  # said whatever the verbosity
        self._lock = threading.Lock()
        self.kept: KeptStack | None = None
        self._kept_checked = False
        self.notices: list[str] = []  # shown in the summary, whatever the verbosity
        self.files = RunFiles(settings.timeline)  # the timeline, the last run's logs
        self._over = False  # stop() ran: no stack may be created after it
        self.run_id = f"{os.getpid()}-{secrets.token_hex(3)}"

    @property
    def say(self) -> Say | None:
        """Where progress lines and tables go; whatever is set, every line is redacted."""
        return self._say

    @say.setter
    def say(self, write: Say | None) -> None:
        self._say = None if write is None else (lambda line: write(self.redact(line)))

    # -- the spec, read when first needed ----------------------------------------------

    def absent(self) -> ConfigError | None:
        """Why no service has a fixture, when no compose file was found."""
        return None if self.searched is None else ConfigError(self.no_compose_file())

    def preset(self, stack: StackSpec | None, error: PyAirtableError | None) -> None:
        self._stack, self._error, self._loaded = stack, error, True

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from ..model.spec import load_stack

        try:
            stack = load_stack(
                self.compose_files,
                env_file=self.env_file,
                profiles=self.settings.profile,
                overrides=self._free_ports(),
            )
            stack = self.backend_class.adapt(stack, self.placement)
        except ConfigError as exc:
            self._error = exc
            return
        self._stack = stack
        self.notices += [f"compose warning: {w}" for w in stack.warnings]
        notes = [f"warning: {note}" for note in stack.secret_notes()]
        self.notices += [note for note in notes if note not in self.notices]  # once
        self.hook.pytest_pyairtable_stack_loaded(stack=stack)

    def no_compose_file(self) -> str:
        """Why there is no stack when no compose file was found: what was looked for,
        where, a compose file one level below if there is one, and how to name it."""
        from ..model.project import DEFAULT_NAMES

        where = self.searched or self.compose_file.parent
        below = sorted(p for name in DEFAULT_NAMES for p in where.glob(f"*/{name}"))
        seen = f"; there is {below[0].relative_to(where)}" if below else ""
        path = below[0].relative_to(where) if below else "PATH"
        return (
            f"no compose file in {where} (none of {', '.join(DEFAULT_NAMES)}, and "
            f"COMPOSE_FILE is unset), so no service has a fixture{seen}. Fix: pass "
            f"--pyairtable-compose-file {path}, or set pyairtable_compose_file in the ini file."
        )

    @property
    def backend_class(self) -> type[BaseBackend]:
        """The backend the settings name, resolved once (its module imported on first use):
        with --pyairtable-local, the placement of the named services on this host and the
        others on the rest's backend."""
        if self._backend_class is None:
            from ..backends.base import backend_class

            placement = self.placement
            chosen = backend_class(placement.rest)
            if placement.host and chosen.where != "host":  # else all of it runs here anyway
                chosen = backend_class("placed")
            self._backend_class = chosen
        return self._backend_class

    @property
    def placement(self) -> Placement:
        """Where the settings put services: --pyairtable-url's, and --pyairtable-local's
        on this host with the others on the backend named (compose unless one is)."""
        if self._placement is None:
            from ..backends.base import Placement
            from ..model.urls import parse_urls

            s = self.settings
            named = s.sources["backend"] != "default"
            rest = s.backend if named or not s.local else "compose"
            self._placement = Placement(parse_urls(s.url), s.local, rest)
        return self._placement

    @property
    def owns_services(self) -> bool:
        """Whether the stack in use is this tool's to break, reset and stop: a kept stack
        answers for the backend that made it."""
        from ..backends.base import backend_class

        kept = self.attached()
        return (backend_class(kept.backend) if kept else self.backend_class).owns_services

    def _free_ports(self) -> dict[str, str]:
        """With --pyairtable-free-ports, the chosen ports as variables (ports.py): a kept
        stack's, if it names them all (the run may attach to it, and if not, chooses
        again), else chosen now. Only for services this run starts itself."""
        wanted = self.settings.free_ports and self.backend_class.owns_services
        if wanted and self.ports is None:
            from .kept import recorded_ports
            from .ports import plan_ports

            self.ports = plan_ports(
                self.compose_files,
                env_file=self.env_file,
                profiles=self.settings.profile,
                environ=os.environ,
                reuse=recorded_ports(self.record_path),
            )
            self.notices += [f"free ports: {self.ports.describe()}"] if self.ports.chosen else []
        return self.ports.environ() if self.ports is not None else {}

    @property
    def chosen_ports(self) -> dict[str, int]:
        return dict(self.ports.chosen) if self.ports is not None else {}

    def _reload_with_fresh_ports(self) -> None:
        """Read the compose file again with ports of its own: the kept stack whose ports
        were reused is not attached to, and may still hold them."""
        assert self.ports is not None
        self.ports.close()
        self.ports = None
        self.notices = [n for n in self.notices if not n.startswith("free ports: ")]
        self._loaded, self._stack, self._error = False, None, None
        self._redactors.clear()
        self._load()

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def stack(self) -> StackSpec | None:
        self._load()
        return self._stack

    @property
    def error(self) -> PyAirtableError | None:
        self._load()
        return self._error

    @property
    def redact(self) -> Redactor:
        """What every output passes through: the environment's secrets and the patterns
        (a run that needs no service never reads the stack), then the stack's too."""
        if self._loaded not in self._redactors:
            stack = self._stack if self._loaded else None
            if stack is not None:
                self._redactors[self._loaded] = stack.redactor()
            else:  # what is known of the stack's names without reading it
                names = dict.fromkeys(self._topology or {}, "a service name")
                for path in (*self.compose_files, self.compose_file.parent):
                    names[str(path)] = "a path of the project"
                self._redactors[self._loaded] = Redactor(secret_values(os.environ), names)
        return self._redactors[self._loaded]

    def redact_all(self) -> Redactor:
        """The stack's masking even before the run has read the stack (an application's
        warning at collection may print a password from .env): read quietly, once,
        leaving what the run itself loads, and when, as it was."""
        if self._loaded or not self.compose_file.is_file():
            return self.redact
        if self._quiet is None:
            from ..model.spec import load_stack

            try:
                stack = load_stack(
                    self.compose_files, env_file=self.env_file, profiles=self.settings.profile
                )
                self._quiet = stack.redactor()
            except ConfigError:
                self._quiet = self.redact
        return self._quiet

    def topology(self) -> Mapping[str, list[str]]:
        """Service -> dependencies; cheap until the stack was loaded (see topology.py)."""
        if self._loaded:
            if self._stack is not None:
                return {
                    n: [d.name for d in s.depends_on if d.name in self._stack.services]
                    for n, s in self._stack.services.items()
                }
            if self._error is None:
                return {}
        if self._topology is None:
            from ..model.topology import read_topology

            try:  # the same loader as _load, through a cache
                self._topology = read_topology(
                    self.compose_files, env_file=self.env_file, profiles=self.settings.profile
                )
            except ConfigError as exc:
                self.preset(None, exc)
                self._topology = {}
        return self._topology

    @property
    def record_path(self) -> Path:
        from ..backends.markers import record_path

        return record_path(self.compose_file)

    # -- running -----------------------------------------------------------------------

    def orchestrator(self) -> Orchestrator:
        if self.error is not None:
            raise self.error
        with self._lock:  # the xdist share creates it from its threads
            if self._over:
                # A worker's request that arrives while the owner stops (Ctrl-C under
                # xdist) must not boot a stack that nothing would stop.
                raise PyAirtableError("pyairtable: the test run is over; its stack was stopped")
            if self.orch is None:
                self.orch = self._make_orchestrator()
            return self.orch

    def _make_orchestrator(self) -> Orchestrator:
        from ..backends.base import BackendOptions, DockerOverrides
        from ..engine.orchestrator import Orchestrator, Timing

        if self.stack is None:
            raise (self.absent() or ConfigError("no stack to start")).fresh()
        s = self.settings
        backend = self.backend_class.create(
            BackendOptions(
                run_id=self.run_id,
                logs_dir=Path(s.logs_dir).resolve() if s.logs_dir else None,
                compose_file=self.compose_file,
                compose_files=self.compose_files,
                env_file=self.env_file,
                profiles=s.profile,
                build=s.build,
                cleanup_volumes=flag_value(os.environ.get("CLEANUP_VOLUMES", "")),
                inherit_env=s.inherit_env,
                port_holds=self.ports,
                docker=self.docker or DockerOverrides(),
                placement=self.placement,
                coverage=self.coverage,
            )
        )
        timing = Timing(
            health_check_timeout=s.health_check_timeout,
            max_startup_time=s.max_startup_time,
            tier_wait_time=s.tier_wait_time,
            service_startup_delay=s.service_startup_delay,
        )
        orch = Orchestrator(
            self.stack,
            backend,
            timing=timing,
            listener=self.events,
            probe_factory=self._probe_factory,
            redact=self.redact,
            snapshots=self._snapshots(self.stack, backend),
        )
        self.events.handle = orch.handle
        self.files.watch(orch, self.events, self.record_path, self.run_id)
        return orch

    def _snapshots(self, stack: StackSpec, backend: BaseBackend) -> NoSnapshots | None:
        """Job snapshots, where a job declares its inputs and they are not turned off;
        the inputs' digests as this boot sees them (a kept stack records them too)."""
        if not any(spec.job_inputs for spec in stack.services.values()):
            return None  # the usual case: nothing to import
        from ..state.jobinputs import digests

        self.job_inputs = digests(stack)
        if self.settings.no_snapshots or not backend.owns_services:
            return None
        from ..state.jobsnap import JobSnapshots

        return JobSnapshots(stack, backend, self.run_id, inputs=self.job_inputs)

    def _probe_factory(self, svc: ServiceSpec, ctx: ProbeContext) -> Probe:
        from ..probes.checks import as_probe, make_probe

        custom = self.hook.pytest_pyairtable_make_probe(spec=svc.probe, service=svc, context=ctx)
        return make_probe(svc.probe, ctx) if custom is None else as_probe(custom)

    def attached(self) -> KeptStack | None:
        """The kept stack this run attached to, checking once whether it may."""
        with self._lock:
            if self._kept_checked or self.stack is None:
                return self.kept
            self._kept_checked = True
            kept, why = None, None
            # Nothing recorded is the usual case: then kept.py's imports stay off the
            # path to the first launch.
            if os.path.lexists(self.record_path):
                from .kept import attachable

                kept, why = attachable(
                    self.record_path, self.stack, self.backend_class.name, self._probe_factory
                )
            if why is not None:
                self._notice(why)
            if kept is None and self.ports is not None and self.ports.source == "record":
                self._reload_with_fresh_ports()
            self.kept = kept
            if kept is not None:
                path = self.record_path
                self.events.lines.put(f"pyairtable: attached to the kept stack in {path}")
            return kept

    def all_notices(self, *, verbose: bool = False) -> list[str]:
        """The run's notices and its backend's (which it may add to while it runs); with
        ``verbose``, the backend's notes too."""
        backend = self.orch.backend.notices if self.orch is not None else []
        if self.orch is not None:
            backend = backend + self.orch.snapshots.notices  # jobs restored, or why not
        if verbose and self.orch is not None:
            backend = backend + self.orch.backend.notes
        return self.notices + [n for n in backend if n not in self.notices]

    def _notice(self, text: str) -> None:
        self.notices.append(text)
        self.events.lines.put("pyairtable: " + text)

    def handle(self, name: str, needed: Iterable[str] = (), *, main_thread: bool = True) -> Handle:
        """``name``'s handle once it is up, starting what the run needs (all of
        ``needed`` at once). From the main thread, progress lines print as it goes."""
        kept = self.attached()
        if kept is not None:
            if main_thread:
                self.flush()
            return kept.handle(name, self.record_path)
        orch = self.orchestrator()
        orch.start(sorted({*self.needed, *needed, name}))
        while main_thread and not orch.settle(name, 0.1):
            self.flush()
        if main_thread:
            self.flush()
        return orch.wait(name)

    def stack_handles(self) -> dict[str, Handle]:
        if self.attached() is None:
            orch = self.orchestrator()
            orch.start()
            orch.expect(orch.runs)  # a test that takes the whole stack waits for all of it
        return {name: self.handle(name) for name in graph.start_order(self.topology())}

    def check_alive(self, names: Iterable[str]) -> None:
        """Before a test: a service it needs that died mid-session fails it with the cause."""
        if self.orch is None:
            return
        for name in names:
            if name in self.orch.runs:
                self.orch.check_alive(name)

    def flush(self) -> None:
        """Print the queued progress lines (from the main thread only)."""
        for line in self.events.drain():
            if self.say is not None:
                self.say(line)

    # -- the end -----------------------------------------------------------------------

    @property
    def keeping(self) -> bool:
        """Whether the end of the run keeps this run's stack (--pyairtable-keep, `up
        --detach`): only one that is still running."""
        return self.settings.keep and self.orch is not None and not self.orch.stopped

    def stop(self) -> KeptStack | None:
        """The end of a run (also after Ctrl-C or SIGTERM): keep the stack if asked and it
        is up (its record is returned), else stop it, dependents first, data safety first."""
        with self._lock:
            self._over = True
        try:
            return self._stop()
        finally:
            if self.ports is not None:
                self.ports.close()

    def _stop(self) -> KeptStack | None:
        if self.orch is None:
            return None
        kept = self.keep() if self.keeping else None
        try:
            if kept is None:
                self.orch.stop()
        finally:  # (an engine stuck at the end: what was said and written still is)
            self.flush()
            self.notices += self.files.after_stop(self.orch)
        return kept

    def hurry(self, signum: int) -> None:
        """A Ctrl-C or SIGTERM while the stack stops: say so, and kill what is left
        instead of waiting for it (held off and said nothing of once it is down)."""
        if self.orch is None or not self.orch.stopping:
            return
        killed = self.orch.hurry()
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        what = f"killed {', '.join(killed)}" if killed else "the rest is killed"
        if self.alert is not None:
            self.alert(
                f"pyairtable: {name} while the stack stops: {what} (SIGKILL), not waited for"
            )

    def record(self, foreground: Foreground | None = None) -> KeptStack:
        """This run's stack as its record describes it, for later runs, `pyairtable down`,
        `status` and `logs`; raises KeepError where it cannot be recorded (not wholly up,
        a backend that keeps nothing, another live stack's record in the way)."""
        from .kept import KeptStack, check_record_free

        assert self.orch is not None
        check_record_free(self.record_path, self.run_id)
        kept = KeptStack.from_orchestrator(self.orch, self.run_id, foreground, self.chosen_ports)
        if self.job_inputs:  # what its jobs ran with: a run attaches while they are the same
            from ..state.jobinputs import recorded

            ran = {n: d for n, d in self.job_inputs.items() if n in kept.services}
            kept.inputs = recorded(ran)
        return kept

    def keep(self) -> KeptStack | None:
        """Leave the stack running and record it; a stack that cannot be kept (a failure,
        a Ctrl-C during start-up) is stopped, and the summary says why."""
        assert self.orch is not None
        try:
            record = self.record()
        except KeepError as exc:
            self.orch.stop()
            self._notice(str(exc))
            return None
        path = self.record_path
        self.orch.detach(path)
        record.save(path)
        self._notice(f"stack kept running, recorded in {path}; `pyairtable down` stops it")
        return record
