"""An image pulled through the engine's API, with what a person needs to see: its layers
and bytes as they come in, and, when it fails, one error naming the image, its registry,
the cause and the fix, within seconds.

- Credentials: the Docker config's (``$DOCKER_CONFIG/config.json``, else
  ``~/.docker/config.json``, its credential store and helpers included), sent with the
  request as the docker CLI sends them (``X-Registry-Auth``). Without any, Podman uses
  its own (``podman login``); Docker has none of its own.
- Failure comes two ways: an HTTP error before the stream (Docker: a missing tag, a
  registry that is down), or an event carrying ``error`` inside a 200 stream (Podman
  always; Docker when a pull breaks midway). Both are failures.
- Deadlines of our own: the registry must have answered (the first event) within
  ``PULL_FIRST_ANSWER`` (Docker gives up on a registry that accepts connections and
  never answers after 25 s; Podman never does); then the run's pulls are stuck when
  none of them has received anything for the engine's ``pull_stall_limit`` (``StallWatch``:
  one pull may wait in silence while the others' layers download, as Docker downloads
  three layers at a time across all pulls).
- Retries: a transient failure (the connection broke, the registry answered 5xx, a
  stall after progress) is tried once more; a missing image, refused credentials or an
  unreachable registry are not: they would fail alike.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .engines import PING, PULL_FIRST_ANSWER, Engine
from .fetch import Fetch

ATTEMPTS = 2
HUB = "docker.io"
_DOWNLOADED = {"Verifying Checksum", "Download complete", "Extracting", "Pull complete"}
_LAYER = _DOWNLOADED | {"Pulling fs layer", "Waiting", "Downloading", "Already exists"}


class PullFailed(Exception):
    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(cause)
        self.cause, self.fix = cause, fix


class Cancelled(Exception):
    """The run stopped while the pull ran."""


@dataclass
class _Attempt:
    said: str  # the engine's or registry's words
    transient: bool = False
    silent: str = ""  # our deadline ran out: what was awaited


def split_reference(ref: str) -> tuple[str, str, str]:
    """(registry, repository, tag or digest) of an image reference, as the engine reads
    it (``docker.io`` for Docker Hub, ``latest`` when no tag is given)."""
    from docker import auth, utils

    repository, tag = utils.parse_repository_tag(ref)
    registry, _ = auth.resolve_repository_name(repository)
    return registry, repository, tag or "latest"


def credentials(registry: str) -> tuple[str | None, str]:
    """(the X-Registry-Auth header, or None; a note when the store could not be read)."""
    from docker import auth

    try:
        found = auth.load_config().resolve_authconfig(registry)
    except Exception as exc:  # a credential helper that is missing or fails
        return None, f"the Docker credential store could not be read ({str(exc)[:120]})"
    return (auth.encode_header(found), "") if found else (None, "")


def login_hint(registry: str) -> str:
    target = "" if registry == HUB else f" {registry}"
    return (
        f"`docker login{target}` (the run sends the Docker config's credentials: "
        "$DOCKER_CONFIG/config.json or ~/.docker/config.json, and its credential store)"
    )


def explain(said: str, ref: str, registry: str, *, sent: bool, note: str = "") -> PullFailed:
    """One error for a failed pull: the registry's words, the cause, the fix."""
    low = said.lower()
    head = f"could not pull its image {ref} from {registry}"
    if "gave http response to https client" in low:
        return PullFailed(
            f"{head}: the registry speaks plain HTTP ({said})",
            f"let the engine use HTTP for {registry}: Docker's insecure-registries in "
            "daemon.json, Podman's [[registry]] insecure = true in registries.conf",
        )
    if any(w in low for w in ("unauthorized", "authentication required", "no basic auth")) or (
        "denied" in low and "does not exist" not in low
    ):
        refused = "refused the stored credentials" if sent else "needs credentials, none are stored"
        return PullFailed(
            f"{head}: the registry {refused} ({said}){'; ' + note if note else ''}",
            f"log in to it: {login_hint(registry)}",
        )
    if any(w in low for w in ("manifest unknown", "not found", "does not exist", "name unknown")):
        return PullFailed(
            f"{head}: the registry has no such image or tag ({said})",
            "check the image's name and tag in the compose file; push the image to the "
            "registry, or give the service a build: section"
            + (f"; if it is private, {login_hint(registry)}" if "denied" in low else ""),
        )
    return PullFailed(
        f"{head}: the registry is unreachable ({said})",
        f"check that {registry} runs and that the engine reaches it (its address, DNS, "
        "a proxy); or pull the image beforehand, or use pull_policy: never with an image "
        "that is there",
    )


def _transient(said: str) -> bool:
    low = said.lower()
    return any(
        w in low
        for w in (
            "connection reset",
            "broken pipe",
            "unexpected eof",
            "502 bad gateway",
            "503 service unavailable",
            "504 gateway",
            "status: 50",
            "received unexpected http status: 5",
        )
    )


def _socket_of(response: Any) -> socket.socket | None:
    """The socket under a streamed response (over a unix socket or TCP, with TLS or not;
    None over ssh), to set its deadline and to shut it when the run stops."""
    with contextlib.suppress(AttributeError):
        raw = response.raw._fp.fp.raw
        sock = getattr(raw, "_sock", None) or getattr(raw, "sock", None)
        return sock if isinstance(sock, socket.socket) else None
    return None


class _Layers:
    """Each layer's latest state and bytes, as pull events report them, into the fetch."""

    def __init__(self, fetch: Fetch, engine: Engine) -> None:
        self.fetch = fetch
        done = {"Pull complete", "Already exists"}
        self.done = done if engine.pull_reports_bytes else done | {"Download complete"}
        self.states: dict[str, str] = {}
        self.sizes: dict[str, int] = {}
        self.got: dict[str, int] = {}
        self.up_to_date = False

    def apply(self, event: dict[str, Any]) -> None:
        status, layer = str(event.get("status") or ""), str(event.get("id") or "")
        self.up_to_date |= "image is up to date" in status.lower()
        if not layer or not (status in _LAYER or status.startswith("Retrying")):
            return
        self.states[layer] = status
        detail = event.get("progressDetail") or {}
        if status == "Downloading" and detail.get("total"):
            self.sizes[layer] = int(detail["total"])
            self.got[layer] = int(detail.get("current") or 0)
        elif status in _DOWNLOADED and layer in self.sizes:
            self.got[layer] = self.sizes[layer]
        fetch = self.fetch
        fetch.layers_total = len(self.states)
        fetch.layers_done = sum(1 for s in self.states.values() if s in self.done)
        fetch.bytes_total, fetch.bytes_done = sum(self.sizes.values()), sum(self.got.values())

    @property
    def new(self) -> int:
        return sum(1 for s in self.states.values() if s != "Already exists")


class Puller:
    """Pulls one image into the engine, its progress into ``fetch``."""

    def __init__(self, api: Any, engine: Engine, fetch: Fetch, platform: str = "") -> None:
        self.api = api
        self.engine = engine
        self.fetch = fetch
        self.platform = platform
        self.answered = False  # the registry answered: from then on, StallWatch's
        self.last_event = time.monotonic()
        self._response: Any = None
        self._cancelled = threading.Event()
        self._stalled = False
        self._lock = threading.Lock()

    def run(self) -> None:
        """Pull; PullFailed (or Cancelled) when it cannot be had."""
        ref = self.fetch.image
        registry, repository, tag = split_reference(ref)
        header, note = credentials(registry)
        attempt = _Attempt("")
        for _ in range(ATTEMPTS):
            attempt = self._once(repository, tag, header)
            if not attempt.said or not attempt.transient or self._cancelled.is_set():
                break
        if self._cancelled.is_set():
            raise Cancelled
        if attempt.said:
            failed = explain(attempt.said, ref, registry, sent=header is not None, note=note)
            if attempt.silent:
                failed = PullFailed(
                    f"could not pull its image {ref} from {registry}: {attempt.said}",
                    f"check that {registry} runs and answers (the engine, "
                    f"{self.engine.kind}, would wait longer, or for ever)",
                )
            raise failed
        self._finish(ref)

    def _once(self, repository: str, tag: str, header: str | None) -> _Attempt:
        import requests

        api = self.api
        self._stalled, self.answered, self.last_event = False, False, time.monotonic()
        params = {"fromImage": repository, "tag": tag}
        if self.platform:
            params["platform"] = self.platform
        # Over ssh the stream's socket cannot be reached to lift the first deadline later.
        ssh = self.engine.location.url.startswith("ssh://")
        try:
            response = api.post(
                f"{api.base_url}/v{api.api_version}/images/create",
                params=params,
                headers={"X-Registry-Auth": header} if header else {},
                stream=True,
                timeout=(PING, None if ssh else PULL_FIRST_ANSWER),
            )
        except requests.exceptions.ReadTimeout:
            return _Attempt(
                f"the registry did not answer within {PULL_FIRST_ANSWER:g}s", silent="answer"
            )
        with self._lock:
            self._response = response
        try:
            if response.status_code >= 400:
                said = _message(response)
                return _Attempt(said, transient=response.status_code >= 500 and _transient(said))
            return self._read(response)
        finally:
            response.close()

    def _read(self, response: Any) -> _Attempt:
        layers = _Layers(self.fetch, self.engine)
        self._layers = layers
        first = True
        try:
            for event in _events(response):
                self.last_event = time.monotonic()
                if first:  # the registry answered: from now on, the run's stall limit
                    first, self.answered = False, True
                    sock = _socket_of(response)
                    if sock is not None:
                        sock.settimeout(None)
                if event.get("error") or event.get("errorDetail"):
                    detail = event.get("errorDetail") or {}
                    said = str(detail.get("message") or event.get("error"))
                    return _Attempt(said, transient=_transient(said))
                layers.apply(event)
        except Exception as exc:  # a deadline, or the connection broke
            if self._stalled:
                limit = self.engine.pull_stall_limit
                said = f"the pulls stalled: none received anything for {limit:g}s"
                return _Attempt(said, transient=True)
            if self._cancelled.is_set():
                return _Attempt("cancelled")
            if first and ("timed out" in str(exc).lower() or isinstance(exc, TimeoutError)):
                wait = f"the registry did not answer within {PULL_FIRST_ANSWER:g}s"
                return _Attempt(wait, silent="answer")
            return _Attempt(f"the stream broke: {str(exc)[:200]}", transient=True)
        return _Attempt("")

    def _finish(self, ref: str) -> None:
        """The image as the engine now has it: its layers and size for the summary."""
        layers = getattr(self, "_layers", None)
        inspected = self.api.inspect_image(ref)  # a pull that said nothing wrong, proven
        count = len((inspected.get("RootFS") or {}).get("Layers") or ())
        self.fetch.layers_total = self.fetch.layers_done = count or self.fetch.layers_total
        if not self.fetch.bytes_total:  # the engine did not say: the image's size
            self.fetch.bytes_total = self.fetch.bytes_done = int(inspected.get("Size") or 0)
        fresh = layers is not None and layers.new and not layers.up_to_date
        self.fetch.finish("pulled" if fresh else "up to date")

    def cancel(self) -> None:
        """Stop it (the run is stopping): its stream is shut, its thread returns."""
        self._cancelled.set()
        self._shut()

    def stall(self) -> None:
        """Stop this attempt: the run's pulls are stuck (tried once more)."""
        self._stalled = True
        self._shut()

    def _shut(self) -> None:
        with self._lock:
            response = self._response
        sock = _socket_of(response) if response is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class StallWatch:
    """The run's pulls are stuck when none of those the registry answered has received
    anything for the engine's stall limit: then each such attempt is stopped (a
    transient failure, tried once more). One pull alone may be silent for long."""

    def __init__(self) -> None:
        self._pullers: list[Puller] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, puller: Puller) -> None:
        with self._lock:
            self._pullers.append(puller)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="pyairtable-pull-watch", daemon=True
                )
                self._thread.start()

    def remove(self, puller: Puller) -> None:
        with self._lock:
            self._pullers.remove(puller)

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            self.look()

    def look(self) -> None:
        """Stop the answered pulls if none of them received anything for the limit."""
        with self._lock:
            active = [p for p in self._pullers if p.answered]
        if not active:
            return
        limit = max(p.engine.pull_stall_limit for p in active)
        if time.monotonic() - max(p.last_event for p in active) > limit:
            for puller in active:
                puller.stall()

    def close(self) -> None:
        self._stop.set()


def _message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} {response.text[:200]}".strip()
    return str(body.get("message") if isinstance(body, dict) else body)[:300]


def _events(response: Any) -> Iterator[dict[str, Any]]:
    """The stream's JSON events, as they come (one per line)."""
    pending = b""
    for chunk in response.iter_content(chunk_size=None):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                with contextlib.suppress(ValueError):
                    yield json.loads(line)
    if pending.strip():
        with contextlib.suppress(ValueError):
            yield json.loads(pending)
