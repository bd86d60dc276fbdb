"""The images a stack's services run, made available before the services start.

Which image to pull and which to build is decided as compose decides it (compose-go's
``GetPullPolicy`` and compose's ``mustPull``): ``pull_policy`` ``always`` pulls, ``never``
and ``build`` never do, ``missing`` (the default, also ``if_not_present`` and an unknown
``refresh``) pulls what the engine lacks, ``daily``, ``weekly`` and ``every_<duration>``
pull when the image was last tagged longer ago than that (or is missing). A pull that
fails is no error for a service that can be built. A service with ``build:`` is built
when its image is missing, with ``pull_policy: build`` or ``--pyairtable-build=always``;
and rebuilt when a run built it before and its context changed since (builds.py);
``--pyairtable-build=never`` builds nothing, as compose's ``--no-build``.

All of it starts when the stack is prepared, before any service may start: up to
``PULLS`` pulls and ``BUILDS`` builds at once. Whether an image is there is asked without
the engine's SDK (engines.quick_get): a stack whose images are all there waits for nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..model.durations import go_duration
from ..model.spec import ServiceSpec
from ..support.errors import ConfigError, PrerequisiteError, PyAirtableError
from .builds import Builder, BuildFailed
from .engines import Engine, Location, quick_get
from .fetch import Fetch
from .pulls import Cancelled, Puller, PullFailed, StallWatch

PULLS = 8  # at once: the engine limits downloads itself (dockerd: 3 layers at a time)
BUILDS = 2  # at once: a build keeps a core busy
_WINDOWS = {"daily": 86400.0, "weekly": 7 * 86400.0}


def pull_policy(svc: ServiceSpec) -> tuple[str, float | None]:
    """(always | never | build | missing | refresh, the refresh window in seconds)."""
    policy = str(svc.compose.get("pull_policy") or "missing")
    if policy in ("always", "never", "build", "missing"):
        return policy, None
    if policy in _WINDOWS:
        return "refresh", _WINDOWS[policy]
    if policy.startswith("every_"):
        try:
            return "refresh", go_duration(policy[6:]) / 1e9
        except ValueError as exc:
            raise ConfigError(
                f"service '{svc.name}': pull_policy {policy!r}: {exc}. "
                "Fix: every_<duration>, e.g. every_12h."
            ) from None
    return "missing", None  # if_not_present, and whatever else compose reads as missing


def image_name(svc: ServiceSpec, project: str) -> str:
    """The image compose runs for ``svc``: its ``image:``, else ``<project>-<service>``."""
    return svc.image or f"{project}-{svc.name}"


def _tagged_at(inspected: dict[str, Any]) -> float:
    """When the image was last tagged (a pull tags it), as epoch seconds; 0 if unknown."""
    text = str((inspected.get("Metadata") or {}).get("LastTagTime") or "")
    whole = text.rstrip("Z").split(".")[0]
    with contextlib.suppress(ValueError):
        moment = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc)
        return max(0.0, moment.timestamp())
    return 0.0


def must_pull(svc: ServiceSpec, present: dict[str, Any] | None) -> bool:
    """compose's mustPull: only a service that names its image is pulled."""
    if not svc.image:
        return False
    policy, window = pull_policy(svc)
    if policy == "always":
        return True
    if policy in ("never", "build"):
        return False
    if present is None:
        return True
    return policy == "refresh" and time.time() > _tagged_at(present) + (window or 0.0)


class Images:
    """The run's image fetches: planned per batch of services, run in pools."""

    def __init__(
        self,
        *,
        location: Location | None,
        engine: Callable[[], tuple[Any, Engine]],
        builder: Builder,
        project: str,
        build: str = "auto",
    ) -> None:
        self.location = location
        self.engine = engine  # the SDK client and the engine, once connected
        self.builder = builder
        self.project = project
        self.build_setting = build
        self._cv = threading.Condition()
        self._of: dict[str, Fetch | None] = {}  # service -> what it waits for
        self._errors: dict[str, PyAirtableError] = {}  # service -> why it has no plan
        self._by_image: dict[str, Fetch] = {}
        self._known: dict[str, ServiceSpec] = {}
        self._pullers: list[Puller] = []
        self._stalls = StallWatch()  # the run's pulls stuck, all of them
        self._pulls = ThreadPoolExecutor(PULLS, thread_name_prefix="pyairtable-pull")
        self._builds = ThreadPoolExecutor(BUILDS, thread_name_prefix="pyairtable-build")
        self._closed = False

    # -- planning ------------------------------------------------------------------------

    def plan(self, specs: Sequence[ServiceSpec]) -> dict[str, Fetch | None]:
        """What each service waits for (None: its image is there), every fetch started."""
        with self._cv:
            self._known.update({s.name: s for s in specs})
        planned: dict[str, Fetch | None] = {}
        try:
            for svc in specs:
                planned[svc.name] = self._plan_one(svc)
        except PyAirtableError as exc:
            with self._cv:
                for svc in specs:
                    if svc.name not in planned:
                        self._errors[svc.name] = exc
                self._cv.notify_all()
            raise
        finally:
            with self._cv:
                self._of.update(planned)
                self._cv.notify_all()
        return planned

    def _present(self, name: str) -> dict[str, Any] | None:
        """The image's inspect, None when the engine does not have it."""
        if self.location is not None:
            answer = quick_get(self.location, f"/images/{name}/json")
            if answer is not None and answer[0] in (200, 404):
                return answer[1] if answer[0] == 200 and isinstance(answer[1], dict) else None
        api, _ = self.engine()  # TLS, ssh: only the SDK reaches it
        try:
            found: dict[str, Any] = api.inspect_image(name)
        except Exception as exc:
            if getattr(getattr(exc, "response", None), "status_code", None) == 404:
                return None
            raise PrerequisiteError(
                f"the engine could not say whether {name} is there: {exc}"
            ) from None
        return found

    def _builder_of(self, svc: ServiceSpec) -> ServiceSpec | None:
        """compose's isServiceImageToBuild, over the services known to this run: the one
        whose build: makes the image."""
        if self.build_setting == "never":
            return None
        if svc.compose.get("build"):
            return svc
        with self._cv:
            known = list(self._known.values())
        return next((o for o in known if o.image == svc.image and o.compose.get("build")), None)

    def _plan_one(self, svc: ServiceSpec) -> Fetch | None:
        name = image_name(svc, self.project)
        with self._cv:
            if name in self._by_image:  # another service runs the same image
                shared = self._by_image[name]
                shared.services.append(svc.name)
                return shared
        policy, _ = pull_policy(svc)
        build = bool(svc.compose.get("build")) and self.build_setting != "never"
        if build and (self.build_setting == "always" or policy == "build"):
            return self._start(svc, name, "build")
        present = self._present(name)
        if must_pull(svc, present):
            return self._start(svc, name, "pull", fallback=self._builder_of(svc))
        if present is not None:
            if build and self.builder.built_here_before(svc):
                return self._start(svc, name, "build")  # reused unless its context changed
            return None
        return self._start(svc, name, "build") if build else self._refused(svc, name, policy)

    def _refused(self, svc: ServiceSpec, name: str, policy: str) -> Fetch:
        """A missing image that may be neither pulled nor built: failed at once."""
        fetch = Fetch("pull", name, [svc.name])
        if policy == "never":
            fetch.fail(
                f"cannot get its image {name}: it is not on the engine, and pull_policy: "
                "never forbids pulling it",
                f"pull or build it first (`docker pull {name}`), or drop pull_policy: never",
            )
        else:  # it has build: and --pyairtable-build=never
            fetch.fail(
                f"cannot get its image {name}: it is not on the engine, and "
                "--pyairtable-build=never forbids building it",
                f"build it first (`docker compose build {svc.name}`), or drop the option",
            )
        return fetch

    def _start(
        self, svc: ServiceSpec, name: str, kind: str, *, fallback: ServiceSpec | None = None
    ) -> Fetch:
        fetch = Fetch(kind, name, [svc.name])
        if not svc.image:  # named by compose for this run only
            fetch.label = f"{svc.name}'s image"
        with self._cv:
            if self._closed:
                fetch.fail("could not get its image: the run stopped", "")
                return fetch
            self._by_image[name] = fetch
            pool = self._pulls if kind == "pull" else self._builds
            pool.submit(self._run, svc, fetch, fallback)
        return fetch

    # -- running -------------------------------------------------------------------------

    def _run(self, svc: ServiceSpec, fetch: Fetch, fallback: ServiceSpec | None) -> None:
        try:
            api, engine = self.engine()
            if fetch.kind == "pull":
                try:
                    self._pull(api, engine, svc, fetch)
                    return
                except PullFailed as failed:
                    if fallback is None:
                        fetch.fail(failed.cause, failed.fix)
                        return
                # no error where it can be built (compose's rule): built instead
                fetch.kind, fetch.layers_total, fetch.bytes_total = "build", 0, 0
                svc = fallback
            # --pyairtable-build=always: a build each time (with the engine's cache)
            reuse = self.build_setting != "always"
            self.builder.run(svc, fetch.image, fetch, api, engine, reuse=reuse)
        except (PullFailed, BuildFailed) as failed:
            fetch.fail(failed.cause, failed.fix)
        except Cancelled:
            fetch.fail("could not get its image: the run stopped", "")
        except PyAirtableError as exc:  # no engine
            fetch.fail(f"could not get its image {fetch.image}: {exc}", "")
        except Exception as exc:  # the engine answered otherwise: name the call
            fetch.fail(
                f"could not get its image {fetch.image}: the engine failed the "
                f"{fetch.kind}: {str(getattr(exc, 'explanation', None) or exc)[:300]}",
                "see the engine's words; `docker pull` or `docker compose build` shows it too",
            )
        finally:
            if not fetch.done:
                fetch.fail(f"could not get its image {fetch.image}", "")
            with self._cv:
                self._cv.notify_all()

    def _pull(self, api: Any, engine: Engine, svc: ServiceSpec, fetch: Fetch) -> None:
        puller = Puller(api, engine, fetch, str(svc.compose.get("platform") or ""))
        with self._cv:
            if self._closed:
                raise Cancelled
            self._pullers.append(puller)
        self._stalls.add(puller)
        try:
            puller.run()
        finally:
            self._stalls.remove(puller)

    # -- waiting -------------------------------------------------------------------------

    def fetch_of(self, name: str) -> Fetch | None:
        """What ``name`` waits for, once it is planned; its planning's error raised."""
        with self._cv:
            self._cv.wait_for(lambda: name in self._of or name in self._errors or self._closed)
            if name in self._errors:
                raise self._errors[name]
            return self._of.get(name)

    def failed(self, name: str) -> Fetch | None:
        """The fetch ``name`` waited for, if it failed."""
        with self._cv:
            fetch = self._of.get(name)
        return fetch if fetch is not None and fetch.error is not None else None

    def as_done(self, fetches: Iterable[Fetch]) -> Iterator[Fetch]:
        """Each of ``fetches`` as it ends, in that order."""
        left = set(fetches)
        while left:
            with self._cv:
                self._cv.wait_for(lambda: any(f.done for f in left) or self._closed)
                ended = [f for f in left if f.done]
                if not ended:  # closed: nothing more ends
                    return
            for fetch in ended:
                left.discard(fetch)
                yield fetch

    def fetches(self) -> list[Fetch]:
        with self._cv:
            return list(dict.fromkeys(f for f in self._of.values() if f is not None))

    def close(self) -> None:
        """Stop what still runs (the run ends): pulls' streams shut, builds ended."""
        with self._cv:
            self._closed = True
            pullers = list(self._pullers)
            self._cv.notify_all()
        self._stalls.close()
        for puller in pullers:
            puller.cancel()
        self.builder.cancel()
        self._pulls.shutdown(wait=True, cancel_futures=True)
        self._builds.shutdown(wait=True, cancel_futures=True)
        for fetch in self.fetches():
            if not fetch.done:
                fetch.fail("could not get its image: the run stopped", "")
