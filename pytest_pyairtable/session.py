"""The run state of one test session: settings, stack, orchestrator, what to report.

Kept free of pytest (the plugin stores one in ``config.stash``) so that every decision
here can be tested and reused by the command line.
"""

from __future__ import annotations

import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine.events import Listener
from .errors import ConfigError, PyAirtableError, ServiceError
from .model import graph
from .redact import Redactor, mask_url_passwords
from .settings import BY_NAME, Resolved, flag_value

# Everything that reads or runs a stack is imported where it is used: a test run that
# needs no service pays for neither (see topology.py).
if TYPE_CHECKING:
    from .backends.kept import KeptStack
    from .engine.faults import Faults
    from .engine.orchestrator import Handle, Orchestrator, ServiceRun
    from .model.spec import ServiceSpec, StackSpec
    from .probes.checks import Probe, ProbeContext
    from .share import StackClient, StackServer

Say = Callable[[str], None]


def fixture_name(service: str) -> str:
    return "pyairtable_" + service.replace("-", "_").replace(".", "_")


def load_for_config(
    settings: Resolved, rootdir: Path, invocation_dir: Path, hook: Any = None
) -> StackSession:
    """A session for the compose file(s) the settings name (else COMPOSE_FILE, else
    compose's default names at rootdir); read fully only when a test (or command) needs
    the stack, and a broken file becomes the session's error."""
    from .model.project import find_compose_files

    given = settings["compose_file"]
    env_file = invocation_dir / settings["env_file"] if settings["env_file"] else None
    error: ConfigError | None = None
    try:
        files = find_compose_files(given, invocation_dir, os.environ, search=rootdir)
    except ConfigError as exc:
        files, error = (), exc
    compose = files[0] if files else rootdir / "docker-compose.yml"
    session = StackSession(
        settings, hook, compose_file=compose, env_file=env_file, compose_files=files
    )
    missing = [f for f in files if not f.is_file()]
    if error is None and missing:
        error = ConfigError(
            f"compose file {missing[0]} not found. Fix: pass --pyairtable-compose-file "
            "or set pyairtable_compose_file in your ini file."
        )
    if error is not None or not files:
        session.preset(None, error)
    return session


class _Events(Listener):
    """Forwards orchestrator events to pluggy hooks and queues progress lines.

    Orchestrator threads must not write to the terminal while pytest captures output,
    so lines are queued and the waiting fixture prints them from the main thread.
    """

    def __init__(self, session: StackSession) -> None:
        self.session = session
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    def _hook(self) -> Any:
        return self.session.hook

    def service_starting(self, run: ServiceRun) -> None:
        self.lines.put(f"pyairtable: {run.name:<22} starting (tier {run.tier})")

    def service_ready(self, run: ServiceRun) -> None:
        self.lines.put(
            f"pyairtable: {run.name:<22} {run.state.value} in {run.ready_seconds or 0:.2f}s"
        )
        if self._hook() is not None and self.session.orch is not None:
            handle = self.session.orch.handle(run.name)
            self._hook().pytest_pyairtable_service_ready(service=handle, details=dict(run.details))

    def service_failed(self, run: ServiceRun) -> None:
        headline = run.error.headline() if isinstance(run.error, ServiceError) else str(run.error)
        self.lines.put(f"pyairtable: {headline}")
        if self._hook() is not None:
            self._hook().pytest_pyairtable_service_failed(run=run, error=run.error)

    def probe_attempt(self, run: ServiceRun, attempt: int, error: str | None) -> None:
        if self.session.settings["debug"]:
            outcome = "ok" if error is None else self.session.redact(error)
            self.lines.put(f"pyairtable: {run.name:<22} probe #{attempt}: {outcome}")

    def before_stop(self, run: ServiceRun) -> None:
        if self._hook() is not None:
            self._hook().pytest_pyairtable_before_stop(run=run)


class StackSession:
    def __init__(
        self,
        settings: Resolved,
        hook: Any = None,
        *,
        compose_file: Path,
        env_file: Path | None = None,
        compose_files: tuple[Path, ...] = (),
    ) -> None:
        self.settings = settings
        self.hook = hook
        self.compose_file = compose_file
        self.compose_files = compose_files or (compose_file,)  # merged in this order
        self.env_file = env_file
        self._loaded = False
        self._stack: StackSpec | None = None
        self._error: PyAirtableError | None = None
        self._redact: Redactor | None = None
        self._topology: dict[str, list[str]] | None = None
        self._old_sigterm: Any = None
        self.backend_options: dict[str, Any] = {}  # e.g. pytest-docker's fixture overrides
        self.orch: Orchestrator | None = None
        self.events = _Events(self)
        self.needed: set[str] = set()
        self.say: Say | None = None
        self.progress: Callable[[Orchestrator], None] | None = None  # a live display
        self.current_nodeid = ""
        self.client: StackClient | None = None  # an xdist worker: the controller owns the stack
        self.server: StackServer | None = None  # the xdist controller
        self._reported: dict[int, tuple[PyAirtableError, str]] = {}
        self._lock = threading.Lock()
        self._over = False  # stop() ran: no stack may be created after it
        self.kept: KeptStack | None = None
        self.notices: list[str] = []  # shown in the summary, whatever the verbosity
        self._timeline_written = False
        self._kept_checked = False
        self.run_id = f"{os.getpid()}-{secrets.token_hex(3)}"

    # -- what exists ---------------------------------------------------------------

    def preset(self, stack: StackSpec | None, error: PyAirtableError | None) -> None:
        self._stack, self._error, self._loaded = stack, error, True

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        from .backends.external import parse_urls, with_urls
        from .model.spec import load_stack

        try:
            stack = load_stack(
                self.compose_files, env_file=self.env_file, profiles=self.settings["profile"]
            )
            if self.settings["backend"] == "external":
                stack = with_urls(stack, parse_urls(self.settings["url"]))
        except ConfigError as exc:
            self._error = exc
            return
        self._stack = stack
        self.notices += [f"compose warning: {w}" for w in stack.warnings]
        if self.hook is not None:
            self.hook.pytest_pyairtable_stack_loaded(stack=stack)

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
        if self._redact is None:
            self._redact = Redactor(self.stack.secret_values() if self.stack else [])
        return self._redact

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
            from .model.topology import read_topology

            try:  # the same loader as _load, through a cache
                self._topology = read_topology(
                    self.compose_files, env_file=self.env_file, profiles=self.settings["profile"]
                )
            except ConfigError as exc:
                self.preset(None, exc)
                self._topology = {}
        return self._topology

    fixture_name = staticmethod(fixture_name)

    def select(self, fixturenames: set[str]) -> None:
        """Remember which services the collected tests need (the partial stack)."""
        topo = self.topology()
        if "pyairtable_stack" in fixturenames:
            self.needed = set(topo)
        else:
            self.needed = {n for n in topo if fixture_name(n) in fixturenames}

    # -- running -------------------------------------------------------------------

    def orchestrator(self) -> Orchestrator:
        if self.error is not None:
            raise self.error
        with self._lock:  # the xdist share creates it from its threads
            if self._over:
                # A worker's request that arrives while the owner stops (Ctrl-C under
                # xdist) must not boot a stack that nothing would stop.
                raise PyAirtableError("pyairtable: the test run is over; its stack was stopped")
            return self._orchestrator()

    def _orchestrator(self) -> Orchestrator:
        from .backends.base import backend_class
        from .engine.orchestrator import Orchestrator, Timing

        if self.orch is None:
            assert self.stack is not None
            s = self.settings
            logs_dir = Path(s["logs_dir"]).resolve() if s["logs_dir"] else None
            backend = backend_class(s["backend"])(
                run_id=self.run_id,
                logs_dir=logs_dir,
                compose_file=self.compose_file,
                build=s["build"],
                cleanup_volumes=flag_value(os.environ.get("CLEANUP_VOLUMES", "")),
                **self.backend_options,
            )
            found, project = getattr(backend, "found", None), getattr(backend, "project", "")
            if found:
                self.notices.append(f"compose backend: {found}, project {project}")
            for project in getattr(backend, "removed_stale", ()):
                self.notices.append(f"removed the containers of {project}, left by a killed run")
            timing = Timing(
                health_check_timeout=s["health_check_timeout"],
                max_startup_time=s["max_startup_time"],
                tier_wait_time=s["tier_wait_time"],
                service_startup_delay=s["service_startup_delay"],
            )
            from .signals import install_sigterm_handler

            self._old_sigterm = install_sigterm_handler()
            self.orch = Orchestrator(
                self.stack,
                backend,
                timing=timing,
                listener=self.events,
                probe_factory=self._probe_factory,
            )
        return self.orch

    def _probe_factory(self, svc: ServiceSpec, ctx: ProbeContext) -> Probe:
        from .probes.checks import make_probe

        if self.hook is not None:
            custom: Probe | None = self.hook.pytest_pyairtable_make_probe(
                spec=svc.probe, service=svc, context=ctx
            )
            if custom is not None:
                return custom
        return make_probe(svc.probe, ctx)

    def serve_workers(self) -> str:
        """Own the stack for other processes (xdist workers); return the socket path."""
        from .share import StackServer

        self.server = StackServer(self.serve, self.first_report)
        return self.server.path

    def attach(self, socket_path: str) -> None:
        from .share import StackClient

        self.client = StackClient(socket_path)

    def serve(self, name: str, needed: list[str]) -> Handle:
        kept = self.attached()
        if kept is not None:
            return self._kept_handle(kept, name)
        orch = self.orchestrator()
        orch.start(sorted({*needed, name}))
        return orch.wait(name)

    def attached(self) -> KeptStack | None:
        """The kept stack this run attached to, checking once whether it may."""
        from .backends.kept import KeptStack, state_path, why_not_reusable

        with self._lock:
            if self._kept_checked or self.stack is None:
                return self.kept
            self._kept_checked = True
            path = state_path(self.compose_file)
            kept = KeptStack.load(path)
            if kept is None:
                return None
            reason = why_not_reusable(kept, self.stack, self.settings["backend"])
            if reason is not None:
                self.notices.append(
                    f"not attaching to the kept stack in {path}: {reason}; "
                    "this run starts its own (`pyairtable down` stops the kept one)"
                )
                self.events.lines.put("pyairtable: " + self.notices[-1])
                return None
            self.kept = kept
            self.events.lines.put(f"pyairtable: attached to the kept stack in {path}")
            return kept

    def _kept_handle(self, kept: KeptStack, name: str) -> Handle:
        from .backends.kept import state_path

        if name not in kept.services:
            raise PyAirtableError(
                f"the kept stack in {state_path(self.compose_file)} has no service '{name}' "
                "(it was booted for other tests). Fix: `pyairtable down`, then run again."
            )
        return kept.services[name].handle

    def preflight(self) -> list[str]:
        """Everything missing to start the selected services, listed at once."""
        from .backends.local import preflight

        assert self.stack is not None
        if self.settings["backend"] != "local":
            return []
        names = graph.closure(self.topology(), self.needed or self.topology())
        return preflight([self.stack.services[n] for n in sorted(names)])

    def faults(self) -> Faults:
        from .engine.faults import Faults

        if self.client is not None:
            raise PyAirtableError(
                "pyairtable_faults needs the process that owns the stack, and under xdist that "
                "is the controller. Fix: run resilience tests without -n (or with -n 0)."
            )
        return Faults(self.orchestrator())

    def check_alive(self, fixturenames: Iterable[str]) -> None:
        """Before a test: a service it needs that died mid-session fails it with the cause."""
        if self.orch is None:
            return
        for name in self.topology():
            if fixture_name(name) in fixturenames and name in self.orch.runs:
                self.orch.check_alive(name)

    def handle(self, name: str) -> Handle:
        if self.client is not None:
            return self.client.handle(name, sorted(self.needed), self.current_nodeid)
        kept = self.attached()
        if kept is not None:
            self.flush()
            return self._kept_handle(kept, name)
        orch = self.orchestrator()
        orch.start(sorted(self.needed | {name}))
        while not orch.settle(name, 0.1):
            self.flush()
        self.flush()
        return orch.wait(name)

    def stack_handles(self) -> dict[str, Handle]:
        if self.client is None and self.attached() is None:
            self.orchestrator().start()
        return {name: self.handle(name) for name in graph.start_order(self.topology())}

    def flush(self) -> None:
        while True:
            try:
                line = self.events.lines.get_nowait()
            except queue.Empty:
                return
            if self.say is not None:
                self.say(line)

    def stop(self) -> None:
        """Stop everything this run started; when it returns, the run is over (no
        service, reaper or thread answering workers is left)."""
        with self._lock:
            self._over = True
        if self.client is not None:
            self.client.close()
        if self.server is not None:
            self.server.close()  # no new requests; those in flight end with the stack
        if self.orch is not None:
            if self.settings["keep"] and not self.orch.stopped:
                self.keep()
            else:
                self.orch.stop()
            self.flush()
            if self.settings["timeline"] and self.orch.runs and not self._timeline_written:
                from .engine.timeline import write_timeline

                self._timeline_written = True
                path = Path(self.settings["timeline"]).resolve()
                write_timeline(self.orch, path)
                self.notices.append(f"start-up timeline written to {path}")
            from .signals import restore_sigterm_handler

            restore_sigterm_handler(self._old_sigterm)
        if self.server is not None:
            self.server.join()

    def keep(self) -> None:
        """Leave the stack running and record it for later runs and `pyairtable down`."""
        from .backends.kept import record, state_path

        assert self.orch is not None
        if any(r.error for r in self.orch.runs.values()):
            self.orch.stop()  # a broken stack is not worth keeping
            return
        self.orch.detach()
        path = state_path(self.compose_file)
        record(self.orch, self.settings["backend"], self.run_id).save(path)
        self.events.lines.put(
            f"pyairtable: stack kept running, recorded in {path}; `pyairtable down` stops it"
        )

    def _wait_all(self, orch: Orchestrator) -> None:
        """Until every started service is ready or failed, printing progress as it goes."""
        for name in graph.start_order({n: orch.edges[n] for n in orch.runs}):
            while not orch.settle(name, 0.1):
                self.flush()
                if self.progress is not None:
                    self.progress(orch)
        self.flush()

    def up_until_interrupted(self) -> None:
        """``--pyairtable-up``: boot everything, print the URL table, hold until Ctrl-C."""
        from .backends.kept import record, state_path
        from .report import url_table

        say = self.say or print
        kept = self.attached()
        if kept is not None:
            self.flush()
            say("pyairtable: the stack is already up (kept); `pyairtable down` stops it")
            return
        orch = self.orchestrator()
        orch.start(sorted(self.needed) or None)
        try:
            self._wait_all(orch)
            for line in url_table(orch):
                say(line)
            failed = [r.error for r in orch.runs.values() if r.error is not None]
            if failed:
                for error in failed:
                    say(str(error))
                raise ServiceError(
                    failed[0].service if isinstance(failed[0], ServiceError) else "?",
                    "failed; the stack was stopped",
                )
            if self.settings["keep"]:
                return  # left running by stop(): detached and recorded
            # Recorded while it runs, so `pyairtable status/logs/down` and other test runs
            # in another terminal find it.
            path = state_path(self.compose_file)
            record(orch, self.settings["backend"], self.run_id, owner_pid=os.getpid()).save(path)
            say("pyairtable: stack is up. Press Ctrl-C to stop it.")
            try:
                while True:
                    time.sleep(3600)
            finally:
                path.unlink(missing_ok=True)
        except KeyboardInterrupt:
            say("pyairtable: stopping (reverse dependency order) ...")
        finally:
            started = time.monotonic()
            self.stop()
            if not self.settings["keep"]:
                took = time.monotonic() - started
                say(f"pyairtable: stopped {len(orch.runs)} services in {took:.2f}s")

    # -- reporting -----------------------------------------------------------------

    def first_report(self, error: PyAirtableError, nodeid: str) -> str:
        """The node that reported ``error`` first (this one if it is the first)."""
        if error.first_nodeid:
            return error.first_nodeid
        with self._lock:
            return self._reported.setdefault(id(error), (error, nodeid))[1]

    def header(self) -> list[str]:
        s = self.settings
        parts = [
            f"{name}={_show(s[name])} ({s.sources[name]})"
            for name in BY_NAME
            if s.sources[name] != "default" or name in ("backend", "compose_file")
        ]
        lines = ["pyairtable: " + mask_url_passwords(", ".join(parts))]
        if self._loaded and self._error is not None:
            lines.append(f"pyairtable: stack unavailable: {str(self._error).splitlines()[0]}")
        elif topo := self.topology():  # cheap: the file is read in full only when needed
            tiers = max(graph.tiers(topo).values(), default=0)
            lines.append(f"pyairtable: {self.compose_file} ({len(topo)} services, {tiers} tiers)")
        return lines

    def summary(self) -> list[str]:
        if self.kept is not None:
            from .backends.kept import state_path

            return [
                f"attached to the kept stack ({len(self.kept.services)} services) in "
                f"{state_path(self.compose_file)}; it keeps running"
            ]
        if self.orch is None or not self.orch.runs or self.settings["up"]:
            return list(self.notices)
        from .report import timeline

        total = len(self.topology())
        started = len(self.orch.runs)
        lines = [f"started {started} of {total} services (those the selected tests need):"]
        return self.notices + lines + timeline(self.orch)


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "-"
    return "-" if value is None else str(value)
