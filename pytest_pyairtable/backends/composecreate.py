"""The compose backend's containers, created by compose itself (its semantics, with
every compose file of the stack and its env file) ahead of their launches: in one
compose call each time images are there, on a thread of its own, while nothing else
waits. A launch then only starts its container through the Engine API."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..model.spec import ServiceSpec
from ..support.errors import PyAirtableError
from ..support.files import open_private
from .composecli import ComposeCommand
from .images import Images, pull_policy

PULLED_AGAIN = ("always", "refresh")  # policies compose itself would pull again at creation


class Creation:
    """Which services' containers are being created, and what compose said of each."""

    def __init__(
        self,
        compose: ComposeCommand,
        images: Images,
        logs_dir: Path,
        created: Callable[[], None],
    ) -> None:
        self.compose = compose
        self.images = images
        self.logs_dir = logs_dir
        self.created = created  # a batch is done: its create events may be all there are
        self._done: dict[str, threading.Event] = {}
        self._outputs: dict[str, str] = {}  # what compose said when it created a service
        self._batches: list[threading.Thread] = []
        self._lock = threading.Lock()  # compose calls on one project never overlap
        self._extra_hosts: dict[str, list[str]] = {}
        self._pull_never: list[str] | None = None  # compose's `up --pull never`, if it has it

    def begun(self, name: str) -> bool:
        return name in self._done

    def done(self, name: str) -> threading.Event:
        """Set once nothing more will be created for ``name`` (made, or not: see the
        images' error and ``output``)."""
        return self._done[name]

    def output(self, name: str) -> str:
        return self._outputs.get(name, "")

    def prepare(self, services: Sequence[ServiceSpec]) -> None:
        """Get the images of what is about to start (pulls and builds, all at once), and
        create the containers in one compose call each time images are there (compose
        creates them concurrently): those whose images are at hand at once."""
        fresh = [s for s in services if s.name not in self._done]
        if not fresh:
            return
        hosts = {s.name: list(s.added_hosts) for s in fresh if s.added_hosts}
        if hosts:  # a placed stack's containers reach its host-run services by name
            self._add_hosts(hosts)
        for svc in fresh:
            self._done[svc.name] = threading.Event()
        thread = threading.Thread(
            target=self._prepare, args=(fresh,), name="pyairtable-create", daemon=True
        )
        self._batches.append(thread)
        thread.start()

    def join(self, timeout: float) -> None:
        """Until no creation is under way (none may race the clean-up)."""
        for batch in self._batches:
            batch.join(timeout)

    def _prepare(self, specs: list[ServiceSpec]) -> None:
        try:
            waits = self.images.plan(specs)
            at_hand = [name for name, fetch in waits.items() if fetch is None]
            if at_hand:
                self._create(at_hand, specs)
            pending = {name: fetch for name, fetch in waits.items() if fetch is not None}
            for fetch in self.images.as_done(set(pending.values())):
                names = [name for name, waited in pending.items() if waited is fetch]
                if fetch.error is None:
                    self._create(names, specs)
        except PyAirtableError:
            pass  # the images' error: a launch raises it
        finally:
            for svc in specs:  # nothing more will be created for them
                self._done[svc.name].set()
            self.created()

    def _add_hosts(self, hosts: Mapping[str, list[str]]) -> None:
        """Give these services' containers host entries besides their own, through a
        compose file of ours merged last (compose merges extra_hosts)."""
        with self._lock:
            self._extra_hosts.update(hosts)
            path = self.logs_dir / "pyairtable-hosts.json"  # JSON is YAML: compose reads it
            doc = {"services": {n: {"extra_hosts": h} for n, h in self._extra_hosts.items()}}
            path.write_text(json.dumps(doc, indent=2))
            self.compose.add_file(path)

    def _create(self, names: list[str], specs: Sequence[ServiceSpec]) -> None:
        """Their containers, by compose, from images that are there: it neither builds
        (built already, or not to be: its error is ours) nor pulls again."""
        pulled = [s for s in specs if s.name in names and pull_policy(s)[0] in PULLED_AGAIN]
        try:
            with self._lock:
                flags = ["--no-build", *(self._compose_pull_never() if pulled else [])]
                output = self.compose.run(["up", "--no-start", "--no-deps", *flags, *names])
            with open_private(self.logs_dir / "compose-create.log", "a") as log:
                log.write(output)
            for name in names:
                self._outputs[name] = output
        finally:
            for name in names:
                self._done[name].set()
            self.created()

    def _compose_pull_never(self) -> list[str]:
        """``--pull never`` where compose has it (recent v2): it would pull again
        what pull_policy always (or a refresh window) made us pull a moment ago."""
        if self._pull_never is None:
            self._pull_never = (
                ["--pull", "never"] if "--pull" in self.compose.run(["up", "--help"]) else []
            )
        return self._pull_never
