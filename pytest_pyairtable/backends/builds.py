"""A service's image built by compose (its builder, BuildKit or classic, the engine's
build cache, every ``build:`` key as compose reads it), and reused without a build while
its context and Dockerfile are unchanged.

The context's digest covers every file the build would send (``.dockerignore`` honoured,
or ``<Dockerfile>.dockerignore`` beside the Dockerfile, as BuildKit reads it) by path, mode
and content, the Dockerfile (or ``dockerfile_inline``), the service's ``build:`` settings,
and local ``additional_contexts`` alike. A built image is also tagged
``pyairtable-build/<service>-<where>:<digest>``: a later run with the same digest gives
that image the name compose expects and builds nothing; older tags of that repository
(named for us alone) are removed. An image named for this run's compose project (a
service without ``image:``) loses that name when the run ends.

Build output goes to the service's log as it comes, and its step to the progress line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..model.spec import ServiceSpec
from ..support.files import open_private
from .composecli import ComposeCommand
from .engines import Engine, Location, quick_get
from .fetch import Fetch

CACHE_REPO = "pyairtable-build"
_REMOTE = ("://", "git@", "github.com/", "service:", "docker-image:", "oci-layout:")
_STEP = re.compile(r"(?i)^(?:step|#\d+ \[[^\]]*?)\s*(\d+)/(\d+)")
_SLUG = re.compile(r"[^a-z0-9._-]+")


class BuildFailed(Exception):
    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(cause)
        self.cause, self.fix = cause, fix


def _remote(context: str) -> bool:
    return any(mark in context for mark in _REMOTE)


def _file_digest(path: str) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def _ignore_patterns(root: str, dockerfile: str) -> list[str]:
    """The ignore file BuildKit reads: <Dockerfile>.dockerignore, else the context's."""
    for candidate in (f"{dockerfile}.dockerignore", os.path.join(root, ".dockerignore")):
        with contextlib.suppress(OSError):
            lines = Path(candidate).read_text().splitlines()
            return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    return []


def _tree(digest: Any, root: str, dockerfile: str) -> None:
    """Every path of ``root`` the build would send: its path, kind, mode and content."""
    from docker.utils.build import exclude_paths

    relative = os.path.relpath(dockerfile, root) if os.path.isabs(dockerfile) else dockerfile
    for rel in sorted(exclude_paths(root, _ignore_patterns(root, dockerfile), relative)):
        full = os.path.join(root, rel)
        try:
            info = os.lstat(full)
        except OSError:
            continue  # gone while we looked: the build would not see it either
        digest.update(
            f"{rel}\0{stat.S_IFMT(info.st_mode)}\0{stat.S_IMODE(info.st_mode)}\0".encode()
        )
        if stat.S_ISLNK(info.st_mode):
            digest.update(os.readlink(full).encode())
        elif stat.S_ISREG(info.st_mode):
            digest.update(_file_digest(full))


def context_digest(build: Mapping[str, Any], base: Path | None = None) -> str | None:
    """What the build depends on, as one digest; None for a remote context (a git URL:
    only a build can tell whether it changed)."""
    context = str(build.get("context") or ".")
    if _remote(context):
        return None
    if not os.path.isabs(context):
        context = str((base or Path.cwd()) / context)
    digest = hashlib.sha256(json.dumps(build, sort_keys=True, default=str).encode())
    dockerfile = str(build.get("dockerfile") or "Dockerfile")
    path = dockerfile if os.path.isabs(dockerfile) else os.path.join(context, dockerfile)
    if build.get("dockerfile_inline") is not None:
        digest.update(str(build["dockerfile_inline"]).encode())
    else:
        with contextlib.suppress(OSError):
            digest.update(_file_digest(path))
    _tree(digest, context, path)
    for name, given in sorted(dict(build.get("additional_contexts") or {}).items()):
        if _remote(str(given)):
            return None
        # relative to the project, as compose resolves it; an absolute path as it is
        where = os.path.join(str(base or Path.cwd()), str(given))
        digest.update(f"\0context {name}\0".encode())
        if os.path.isdir(where):
            _tree(digest, where, os.path.join(where, "Dockerfile"))
    return digest.hexdigest()[:32]


def cache_repository(svc: ServiceSpec) -> str:
    """Ours alone: the service's name and where its context is."""
    build = dict(svc.compose.get("build") or {})
    where = hashlib.sha256(f"{build.get('context')}\0{build.get('dockerfile')}".encode())
    slug = _SLUG.sub("-", svc.name.lower()).strip("-.") or "service"
    return f"{CACHE_REPO}/{slug}-{where.hexdigest()[:8]}"


def _split(name: str) -> tuple[str, str]:
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(name)
    return repository, tag or "latest"


class Builder:
    """Builds services' images with compose, for one run (one compose project)."""

    def __init__(
        self,
        compose: ComposeCommand,
        location: Location | None,
        log_path: Callable[[str], Path],
    ) -> None:
        self.compose = compose
        self.location = location
        self.log_path = log_path  # the service's log file, private to its owner
        self._processes: list[subprocess.Popen[str]] = []
        self._lock = threading.Lock()
        self._cancelled = False

    def built_here_before(self, svc: ServiceSpec) -> bool:
        """Whether a run built this service before (its cache repository has a tag):
        then an image by its name is ours, and rebuilt when its context changed."""
        if self.location is None:
            return False
        filters = quote(json.dumps({"reference": [cache_repository(svc)]}))
        answer = quick_get(self.location, f"/images/json?filters={filters}")
        return bool(answer and answer[0] == 200 and answer[1])

    def run(
        self,
        svc: ServiceSpec,
        name: str,
        fetch: Fetch,
        api: Any,
        engine: Engine,
        *,
        reuse: bool = True,
    ) -> None:
        """Reuse (unless not ``reuse``) or build ``name``; BuildFailed with compose's words
        when it fails."""
        fetch.log_path = self.log_path(svc.name)
        build = dict(svc.compose.get("build") or {})
        digest = context_digest(build, self.compose.cwd)
        repository = cache_repository(svc)
        if reuse and digest is not None and self._exists(api, f"{repository}:{digest}"):
            api.tag(f"{repository}:{digest}", *_split(name))
            fetch.finish("reused")
            return
        code, tail = self._compose_build(svc, fetch, engine)
        if self._cancelled:
            raise BuildFailed("could not build its image: the run stopped", "")
        if code != 0 or not self._exists(api, name):
            said = "; ".join(line.strip() for line in tail if line.strip())[-600:]
            raise BuildFailed(
                f"could not build its image {name}: {said or 'compose printed nothing'}",
                "correct the Dockerfile or the build: section; its full output is in the "
                f"log below, and `{self.compose.shown} build {svc.name}` runs it again",
            )
        if digest is not None:
            api.tag(name, repository, digest)
            self._prune(api, repository, digest)
        fetch.finish("built")

    def _compose_build(
        self, svc: ServiceSpec, fetch: Fetch, engine: Engine
    ) -> tuple[int, list[str]]:
        tail: deque[str] = deque(maxlen=12)
        path = self.log_path(svc.name)
        process = self.compose.start(["build", svc.name], engine.compose_environ)
        with self._lock:
            self._processes.append(process)
        assert process.stdout is not None
        with process, open_private(path, "a") as log:
            log.write(f"pytest-pyairtable: building its image: {self.compose.shown} build\n")
            for line in process.stdout:
                log.write(line)
                log.flush()
                tail.append(line)
                step = _STEP.search(line.strip())
                if step:
                    fetch.step = f"{step.group(1)}/{step.group(2)}"
            code = process.wait()
        return code, list(tail)

    def _exists(self, api: Any, name: str) -> bool:
        try:
            api.inspect_image(name)
        except Exception:  # not there (or the engine cannot say: then build)
            return False
        return True

    def _prune(self, api: Any, repository: str, keep: str) -> None:
        """Older digests of this repository (named for us): their tags go, and their
        images with them unless something else uses them."""
        with contextlib.suppress(Exception):
            for image in api.images(name=repository):
                for tag in image.get("RepoTags") or ():
                    if tag.startswith(f"{repository}:") and tag != f"{repository}:{keep}":
                        with contextlib.suppress(Exception):  # in use: it stays
                            api.remove_image(tag)

    def cancel(self) -> None:
        self._cancelled = True
        with self._lock:
            for process in self._processes:
                if process.poll() is None:
                    process.terminate()


def remove_run_names(api: Any, project: str, gone: Callable[[str], bool] | None = None) -> None:
    """The names compose gave images it built for ``project`` (``<project>-<service>``):
    this run's alone; the images stay where another name (our cache's) holds them. With
    ``gone``, ``project`` is a pattern (``pyairtable-run-*``) and a name goes where
    ``gone`` says its run is gone."""
    with contextlib.suppress(Exception):
        for image in api.images(filters={"reference": f"{project}-*"}):
            for tag in image.get("RepoTags") or ():
                name = tag.rsplit(":", 1)[0].rsplit("/", 1)[-1]
                ours = name.startswith(f"{project}-") if gone is None else gone(name)
                if ours:
                    with contextlib.suppress(Exception):
                        api.remove_image(tag)
