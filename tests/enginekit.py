"""Engines and registries of the test session's own, on loopback: Podman's Docker API
service, and CNCF distribution registries (Debian's docker-registry), open or behind
htpasswd. Each is started here, on a socket or port of its own, and stopped by the PID we
started (nothing else is touched); CI starts with nothing running.

Podman gets its configuration from files of ours (CONTAINERS_CONF: no default ulimits,
which a container here cannot raise; CONTAINERS_REGISTRIES_CONF: plain HTTP for loopback
registries, which Podman, unlike dockerd, does not assume), so no drop-in under /etc is
needed (.ci/setup writes them too, for a Podman service a person starts by hand).

The services are started with an environment without the leak check's marker: Podman's
conmon processes outlive their exec sessions by design (minutes); the services
themselves are stopped here, by PID.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from stackrun import free_port

LEAK_MARKERS = ("PYAIRTABLE_TMPDIR", "TMPDIR", "PYAIRTABLE_RUN_ID")
PASSWORD = "pa-secret-29"  # the htpasswd registry's, for its one user


def _clean_env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LEAK_MARKERS}
    env.pop("DOCKER_HOST", None)
    env["TMPDIR"] = str(base / "tmp")
    (base / "tmp").mkdir(exist_ok=True)
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> str | None:
    """None once ``ready``; else why not (the process ended, or 60 s passed), its log."""
    deadline = time.monotonic() + 60
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            return log.read_text(errors="replace")[-600:] or f"exit code {process.poll()}"
        time.sleep(0.05)
    return None


class PodmanService:
    """``podman system service`` on a socket of ours: DOCKER_HOST=``host``. The socket is
    ``<base>/podman/podman.sock``, as Podman's rootless one is under XDG_RUNTIME_DIR."""

    def __init__(self, base: Path, process: subprocess.Popen[bytes], version: str) -> None:
        self.base = base
        self.process = process
        self.socket = base / "podman" / "podman.sock"
        self.host = f"unix://{self.socket}"
        self.version = version

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "-H", self.host, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )

    def stop(self) -> None:
        _stop(self.process)
        shutil.rmtree(self.base, ignore_errors=True)


def start_podman(engine_conf: str = "") -> PodmanService | str:
    """A Podman service of our own, or why there cannot be one (to skip with);
    ``engine_conf``: lines for the ``[engine]`` table of its containers.conf."""
    podman = shutil.which("podman")
    if podman is None or shutil.which("docker") is None:
        return "podman (or the docker CLI) is not installed; .ci/setup installs it"
    base = Path(tempfile.mkdtemp(prefix="pa-podman-", dir="/tmp"))  # short: a socket path
    (base / "podman").mkdir()
    engine = f"[engine]\n{engine_conf}\n" if engine_conf else ""
    (base / "containers.conf").write_text(f"[containers]\ndefault_ulimits = []\n{engine}")
    (base / "registries.conf").write_text(
        'unqualified-search-registries = ["docker.io"]\n\n'
        '[[registry]]\nlocation = "127.0.0.1"\ninsecure = true\n'
    )
    env = _clean_env(base)
    env["CONTAINERS_CONF"] = str(base / "containers.conf")
    env["CONTAINERS_REGISTRIES_CONF"] = str(base / "registries.conf")
    log = base / "podman.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [podman, "system", "service", "--time=0", f"unix://{base}/podman/podman.sock"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=base,
            start_new_session=True,
        )
    service = PodmanService(base, process, "")

    def answers() -> bool:
        return (
            service.docker("version", "--format", "{{.Server.Version}}", timeout=10).returncode == 0
        )

    why = _wait(answers, process, log)
    if why is not None:
        service.stop()
        return f"Podman's API service did not start here: {why}"
    service.version = service.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    return service


class Registry:
    """A distribution registry on 127.0.0.1:<port>, with htpasswd auth when ``user``."""

    def __init__(self, base: Path, process: subprocess.Popen[bytes], port: int, user: str) -> None:
        self.base = base
        self.process = process
        self.address = f"127.0.0.1:{port}"
        self.user = user
        self.password = PASSWORD if user else ""

    def config_dir(self, parent: Path, *, password: str | None = None) -> Path:
        """A Docker config dir (DOCKER_CONFIG) holding credentials for this registry
        (``password`` instead of the right one, to be refused)."""
        parent.mkdir(parents=True, exist_ok=True)
        token = f"{self.user}:{self.password if password is None else password}".encode()
        auths = {self.address: {"auth": base64.b64encode(token).decode()}} if self.user else {}
        (parent / "config.json").write_text(json.dumps({"auths": auths}))
        return parent

    def push(self, name: str, layers: tuple[int, ...], *, from_image: str) -> str:
        """``<address>/<name>``, built from ``from_image`` plus one layer of random bytes
        per size given, pushed here, and gone from the local engine (a run pulls it)."""
        ref = f"{self.address}/{name}"
        with tempfile.TemporaryDirectory() as tmp:
            context = Path(tmp)
            lines = [f"FROM {from_image}"]
            for n, size in enumerate(layers):
                (context / f"layer{n}.bin").write_bytes(os.urandom(size))
                lines.append(f"COPY layer{n}.bin /layer{n}.bin")
            (context / "Dockerfile").write_text("\n".join(lines) + "\n")
            config = self.config_dir(context / "docker-config")
            steps = [
                ["docker", "build", "-q", "-t", ref, str(context)],
                ["docker", "--config", str(config), "push", ref],
                ["docker", "rmi", ref],
            ]
            for argv in steps:
                done = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=300,
                    env={**os.environ, "DOCKER_BUILDKIT": "0"},
                )
                assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
        return ref

    def stop(self) -> None:
        _stop(self.process)
        shutil.rmtree(self.base, ignore_errors=True)


def start_registry(*, user: str = "") -> Registry | str:
    """A registry of our own (behind htpasswd for ``user``), or why there cannot be one."""
    binary = shutil.which("docker-registry")
    if binary is None:
        return "Debian's docker-registry is not installed; .ci/setup installs it"
    if user and shutil.which("htpasswd") is None:
        return "htpasswd (apache2-utils) is not installed; .ci/setup installs it"
    base = Path(tempfile.mkdtemp(prefix="pa-registry-", dir="/tmp"))
    port = free_port()
    lines = [
        "version: 0.1",
        "log: {level: warn, accesslog: {disabled: true}}",
        f"storage: {{filesystem: {{rootdirectory: {base / 'data'}}}, delete: {{enabled: true}}}}",
        f"http: {{addr: 127.0.0.1:{port}, secret: pa-test}}",
    ]
    if user:
        hashed = subprocess.run(
            ["htpasswd", "-Bbn", user, PASSWORD], capture_output=True, text=True, check=False
        )
        if hashed.returncode != 0:
            shutil.rmtree(base, ignore_errors=True)
            return f"htpasswd (apache2-utils) could not hash a password: {hashed.stderr}"
        (base / "htpasswd").write_text(hashed.stdout)
        lines.append(f"auth: {{htpasswd: {{realm: pa-test, path: {base / 'htpasswd'}}}}}")
    (base / "config.yml").write_text("\n".join(lines) + "\n")
    log = base / "registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary, "serve", str(base / "config.yml")],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_clean_env(base),
            cwd=base,
            start_new_session=True,
        )
    registry = Registry(base, process, port, user)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://{registry.address}/v2/", timeout=2):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # it answers: with auth, everything needs it
        except OSError:
            return False

    why = _wait(answers, registry.process, log)
    if why is not None:
        registry.stop()
        return f"docker-registry did not start: {why}"
    return registry
