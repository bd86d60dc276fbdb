"""The container engine the compose backend talks to: where it is, which one it is, how
long each kind of call may take, and every way one engine differs from another. Nothing
outside this module asks which engine it is: it asks the ``Engine`` for a capability.

Where (``locate``), as the docker CLI and compose find it: DOCKER_HOST (with
DOCKER_TLS_VERIFY and DOCKER_CERT_PATH); else the context DOCKER_CONTEXT names (an unknown
name is an error, as it is for the CLI, never a silent fall back to another engine); else
the Docker config's current context; else the default socket. When nothing chose an
engine and the default socket does not answer, Podman's sockets are tried (rootful
/run/podman/podman.sock, rootless $XDG_RUNTIME_DIR/podman/podman.sock), and the compose
and docker processes we start are pointed at the one that answers.

Which (``identify``): Docker or Podman and its version, from the version endpoint; the
run's summary names it.

How long (timeouts by what a call means):

- ``PING``: is anything there (connect, _ping, version, an image's inspect before a
  launch): an engine that answers at all answers these at once.
- ``REQUEST``: a call the engine answers once it has done it (create, start, kill,
  remove, inspect): bounded by the engine's own work.
- no read deadline for a stream that lasts as long as the run (the event stream, a
  followed log): each is opened in its own thread, off the launch path, because an engine
  may send a stream's headers only with its first line (Podman 4 for logs, 5 for events).
- a pull has deadlines of ours (pulls.py): ``PULL_FIRST_ANSWER`` for the registry to
  answer at all, and a stall limit while layers download (``pull_stall_limit``).
- a build has none: its steps take what they take, Ctrl-C stops it.

Differences: the ``Engine``'s capabilities, measured on Docker 20.10-28 and Podman 4.3
through its Docker API; each property's docstring says what differs and what it changes.
Two more are absorbed the same way on every engine: a healthcheck's exec form (Podman 4
stores it split on whitespace) is run as the compose file writes it (healthexec.py), and
an error's status code is never told apart (Podman answers 500 where Docker says 409).

(Over 350 lines: where, which and how long are one question, which engine answers and
how to talk to it, and its capabilities are read in one place; the streams' own
closing is enginestreams.py's.)
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from ..support.errors import PrerequisiteError
from .enginestreams import streams_client_class

PING = 5.0
REQUEST = 60.0
PULL_FIRST_ANSWER = 10.0
POOL_SIZE = 64  # one connection per log stream, the event stream, and calls beside them

DEFAULT_SOCKET = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Location:
    """Where the engine is, and how it was found."""

    url: str  # unix:///..., tcp://host:port, ssh://user@host
    found: str  # "DOCKER_HOST", "the Docker context 'x'", "the default socket", ...
    context: str | None = None  # a Docker context's name: its TLS material is read on connect
    # What compose and the docker CLI need in their environment to reach the same engine:
    # set where we found it ourselves (Podman's socket), empty where they find it alike.
    environ: Mapping[str, str] = field(default_factory=dict)
    tried: tuple[str, ...] = ()  # the sockets that did not answer, for the error

    def describe(self) -> str:
        return f"{self.url} ({self.found})"


def _docker_config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def _current_context() -> str | None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        config = json.loads((_docker_config_dir() / "config.json").read_text())
        name = config.get("currentContext")
        return str(name) if name else None
    return None


def _context_host(name: str) -> str | None:
    """The docker endpoint's host of a context, None if the context does not exist."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = _docker_config_dir() / "contexts" / "meta" / digest / "meta.json"
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    host = ((data.get("Endpoints") or {}).get("docker") or {}).get("Host")
    return str(host) if host else DEFAULT_SOCKET


def _podman_sockets() -> list[tuple[str, str]]:
    found = [("unix:///run/podman/podman.sock", "Podman's rootful socket")]
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    found.append((f"unix://{runtime}/podman/podman.sock", "Podman's rootless socket"))
    return found


def unix_refusal(url: str) -> str | None:
    """Why a unix:// engine socket does not accept a connection, or None if it does."""
    if not url.startswith("unix://"):
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PING)
        try:
            probe.connect(url.removeprefix("unix://"))
        except OSError as exc:
            return f"{url}: {exc.strerror or exc}"
    return None


def locate() -> Location:
    """Where the engine is (see the module's docstring); PrerequisiteError for a context
    that does not exist."""
    if os.environ.get("DOCKER_HOST"):
        return Location(os.environ["DOCKER_HOST"], "DOCKER_HOST")
    named = os.environ.get("DOCKER_CONTEXT")
    name = named or _current_context()
    if name and name != "default":
        host = _context_host(name)
        if host is None:
            where = "DOCKER_CONTEXT" if named else f"currentContext in {_docker_config_dir()}"
            raise PrerequisiteError(
                f"the Docker context {name!r} ({where}) does not exist. Fix: `docker context "
                "ls` lists the contexts; name one of them, or unset DOCKER_CONTEXT (or "
                "`docker context use default`) for the default engine."
            )
        return Location(host, f"the Docker context {name!r}", context=name)
    if unix_refusal(DEFAULT_SOCKET) is None:
        return Location(DEFAULT_SOCKET, "the default socket")
    tried = [DEFAULT_SOCKET]
    for url, what in _podman_sockets():
        if unix_refusal(url) is None:
            return Location(url, what, environ={"DOCKER_HOST": url}, tried=tuple(tried))
        tried.append(url)
    return Location(DEFAULT_SOCKET, "the default socket", tried=tuple(tried))


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def quick_request(
    location: Location, path: str, timeout: float = PING
) -> tuple[int, Mapping[str, str], Any] | None:
    """``GET path`` from the engine without its SDK (which takes ~0.25 s to import): a
    launch asks whether an image is there while the SDK still loads. (status, headers,
    JSON body); None where only the SDK can talk to it (TLS, ssh) or it does not answer."""
    parts = urlsplit(location.url)
    conn: http.client.HTTPConnection
    if parts.scheme == "unix":
        conn = _UnixConnection(parts.path, timeout)
    elif parts.scheme in ("tcp", "http") and not os.environ.get("DOCKER_TLS_VERIFY"):
        if location.context is not None or parts.port in (None, 2376):
            return None  # a context's TLS material, or the TLS port: the SDK's
        host = parts.hostname or "localhost"
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    else:
        return None
    try:
        conn.request("GET", quote(path, safe="/:@?=&%"))
        response = conn.getresponse()
        body = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        if "json" not in headers.get("content-type", ""):
            return response.status, headers, body.decode(errors="replace")
        return response.status, headers, json.loads(body) if body else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def quick_get(location: Location, path: str, timeout: float = PING) -> tuple[int, Any] | None:
    """(status, JSON body) of ``quick_request``."""
    answer = quick_request(location, path, timeout)
    return None if answer is None else (answer[0], answer[2])


@dataclass(frozen=True)
class Engine:
    """Which engine answers, and what differs about it."""

    kind: str  # "Docker" or "Podman"
    version: str
    api_version: str
    location: Location

    @classmethod
    def identify(cls, version: Mapping[str, Any], location: Location) -> Engine:
        """From the version endpoint's answer (Podman lists a "Podman Engine" component)."""
        components = {str(c.get("Name")): c for c in version.get("Components") or ()}
        podman = components.get("Podman Engine")
        return cls(
            kind="Podman" if podman else "Docker",
            version=str((podman or version).get("Version") or "unknown"),
            api_version=str(version.get("ApiVersion") or "1.41"),
            location=location,
        )

    def describe(self) -> str:
        return f"{self.kind} {self.version} at {self.location.describe()}"

    @property
    def podman(self) -> bool:
        return self.kind == "Podman"

    @property
    def exit_deadlock(self) -> str:
        """Where this engine's network code can deadlock as containers exit (two locks
        taken in opposite orders, moby/moby#46661; fixed in Docker 20.10.27 and 23.0):
        what to tell someone whose engine stopped answering, else ""."""
        found = re.match(r"(\d+)\.(\d+)\.(\d+)", self.version)
        if self.podman or found is None or tuple(map(int, found.groups())) >= (20, 10, 27):
            return ""
        return (
            f"Docker {self.version} can deadlock when containers exit (moby/moby#46661, "
            "fixed in 20.10.27): if it stops answering, restart dockerd; upgrading ends it"
        )

    # -- capabilities --------------------------------------------------------------------

    @property
    def has_health_verdicts(self) -> bool:
        """Whether the engine runs healthchecks itself and says healthy/unhealthy: Docker
        does; Podman only through systemd timers (a Podman service without systemd never
        leaves "starting"). Without verdicts, no time is given to wait for one: the
        verdict is judged at the engine's pace (healthexec.py), and where Podman gives
        one after all, it counts as Docker's does."""
        return not self.podman

    @property
    def health_event_carries_status(self) -> bool:
        """Docker's event is "health_status: healthy"; Podman's is a bare "health_status"
        whose HealthStatus lags one check behind: there, the event means "inspect now"."""
        return not self.podman

    @property
    def removal_events(self) -> frozenset[str]:
        """The event that says a container is gone: Docker "destroy", Podman "remove"."""
        return frozenset({"remove"} if self.podman else {"destroy"})

    @property
    def pull_reports_bytes(self) -> bool:
        """Docker's pull events carry each layer's bytes; Podman's only say a layer is
        being pulled, then complete."""
        return not self.podman

    @property
    def pull_stall_limit(self) -> float:
        """How long a pull may send nothing once it began before it counts as stuck: a
        Podman pull is silent for as long as one layer downloads."""
        return 120.0 if self.pull_reports_bytes else 600.0

    @property
    def log_stamps_precise(self) -> bool:
        """Docker stamps log lines in nanoseconds, Podman (4) in whole seconds: a log
        followed again from the last line's stamp (a restart) gets that second's lines
        again, and as many as were written are skipped."""
        return not self.podman

    @property
    def compose_environ(self) -> dict[str, str]:
        """What compose needs to work with this engine: Podman has no BuildKit, so compose
        builds with the classic builder (else it would start a BuildKit container)."""
        return {"DOCKER_BUILDKIT": "0"} if self.podman else {}


def probe_engine(location: Location) -> Engine | None:
    """The engine at ``location``, identified without the SDK by its _ping's headers
    (Server: Docker/<version> or Libpod/<version>; the version endpoint takes Podman
    1.5 s); None where that needs the SDK (TLS, ssh) or nothing answers."""
    answer = quick_request(location, "/_ping")
    if answer is None or answer[0] != 200:
        return None
    server = answer[1].get("server", "")
    name, _, rest = server.partition("/")
    if name not in ("Docker", "Libpod"):
        full = quick_get(location, "/version")  # a proxy in between: ask the engine
        if full is None or full[0] != 200 or not isinstance(full[1], dict):
            return None
        return Engine.identify(full[1], location)
    return Engine(
        kind="Podman" if name == "Libpod" else "Docker",
        version=rest.split(" ")[0] or "unknown",
        api_version=answer[1].get("api-version") or "1.41",
        location=location,
    )


def _client(
    location: Location, version: str, timeout: float | None, pool: int, *, streams: bool = False
) -> Any:
    import docker

    from_env = location.found == "DOCKER_HOST"  # with DOCKER_TLS_VERIFY, DOCKER_CERT_PATH
    options: dict[str, Any] = docker.utils.kwargs_from_env() if from_env else {}
    if location.context is not None:
        from docker.context import ContextAPI

        with contextlib.suppress(Exception):  # unreadable TLS material: the host alone
            found = ContextAPI.get_context(location.context)
            if found is not None and found.TLSConfig:
                options["tls"] = found.TLSConfig
    options["base_url"] = location.url
    kind = streams_client_class() if streams else docker.APIClient
    return kind(version=version, timeout=timeout, max_pool_size=pool, **options)


def connect(location: Location | None = None) -> tuple[Any, Engine]:
    """An API client (timeout ``REQUEST``) for the engine, and the engine; a
    PrerequisiteError saying how to fix it when none answers."""
    try:
        import docker  # noqa: F401
    except ImportError:
        raise PrerequisiteError(
            "the compose backend needs the docker SDK (docker-py). "
            "Fix: pip install 'pytest-pyairtable[docker]'."
        ) from None
    location = location or locate()
    refused = unix_refusal(location.url)
    api = None
    try:
        if refused:  # docker-py would leak the socket of a failed connect: look first
            raise OSError(refused)
        engine = probe_engine(location)
        api = _client(location, engine.api_version if engine else "auto", REQUEST, POOL_SIZE)
        if engine is None:  # TLS or ssh: the SDK asks
            engine = Engine.identify(api.version(), location)
    except Exception as exc:  # DockerException, requests' errors: all mean "no engine"
        if api is not None:
            api.close()
        tried = f" (also tried {', '.join(location.tried[1:])})" if len(location.tried) > 1 else ""
        raise PrerequisiteError(
            f"no Docker engine answers (DOCKER_HOST or the current context) at "
            f"{location.url}{tried}: {str(exc)[:200]}. Fix: start the engine (or Podman's "
            "API service: `podman system service --time=0`, or `systemctl --user start "
            "podman.socket` rootless), point DOCKER_HOST at it, or use the local backend."
        ) from None
    return api, engine


def stream_client(api: Any, engine: Engine) -> Any:
    """A client for long-lived streams (events, followed logs): no read deadline, which
    the request client's timeout would put on them; a stream's close releases its
    connection, read or not (enginestreams.py)."""
    return _client(engine.location, str(api.api_version), None, POOL_SIZE, streams=True)


class EngineCallError(PrerequisiteError):
    """The engine refused or failed a call: which call, its own words, what to do."""


@contextlib.contextmanager
def engine_call(engine: Engine | None, what: str, fix: str = "") -> Iterator[None]:
    """Turn the SDK's and the transport's errors during ``what`` (e.g. "service 'api':
    starting its container") into one that names the call, the engine and a fix, never
    an internal error."""
    try:
        yield
    except PrerequisiteError:
        raise
    except Exception as exc:
        name = engine.describe() if engine is not None else "the engine"
        said = explanation(exc)
        if "timed out" in said.lower() or "timeout" in type(exc).__name__.lower():
            stuck = engine.exit_deadlock if engine is not None else ""
            fix = (fix + "; " if fix else "") + (
                "the engine is overloaded or stuck: `docker info` (or `podman info`) shows "
                "whether it answers; restart it if it does not" + (f" ({stuck})" if stuck else "")
            )
        raise EngineCallError(
            f"{what}: {name} answered: {said}. Fix: "
            + (fix or "see the engine's words; its own log says more")
            + "."
        ) from None


def explanation(exc: BaseException) -> str:
    """The engine's words in an SDK error, else the exception's."""
    found = getattr(exc, "explanation", None)
    text = str(found or exc).strip() or type(exc).__name__
    return text[:300]
