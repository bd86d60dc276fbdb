"""Containers on the test machine's Docker engine: the test image, this run's compose
projects, and compose services that run the stand-in in that image. The ``engine`` and
``compose_project`` fixtures (conftest.py) are made of these.

No registry is reachable: the test image is a `docker import` of an empty root with
the host's /usr bind-mounted read-only, so the host's python3 runs the stand-in. Every
service uses host networking and binds 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # mounted at /app: the stand-in's code
IMAGE = "pyairtable-test:base"


def docker_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=60
    )


def import_root_image(
    image: str, links: tuple[str, ...] = ("bin", "lib", "lib64", "sbin"), host: str | None = None
) -> None:
    """``docker import`` an empty root whose ``links`` point into /usr (the host's, mounted
    read-only by the services), into the engine at ``host`` (else the default one)."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "root.tar"
        with tarfile.open(archive, "w") as tar:
            for name in ("usr", "etc", "tmp", "proc", "sys", "dev", "app"):
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
                tar.addfile(info)
            for link in links:
                info = tarfile.TarInfo(link)
                info.type, info.linkname = tarfile.SYMTYPE, f"usr/{link}"
                tar.addfile(info)
        imported = docker_cli(*(["-H", host] if host else []), "import", str(archive), image)
        assert imported.returncode == 0, imported.stderr


def sleeping_container() -> str:
    """A container of the test image on the host's network whose PID 1 is a python that
    sleeps (and reaps nothing), for what runs inside it: its id (``docker_cli("rm",
    "-f", cid)`` removes it)."""
    started = docker_cli(
        "run", "-d", "--rm", "--network", "host", "-v", "/usr:/usr:ro", IMAGE,
        "/usr/bin/python3", "-c", "import time; time.sleep(120)",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    return started.stdout.strip()


def our_containers(*pids: int) -> list[str]:
    """Containers of the compose projects of this pytest and of the pytest runs ``pids``
    (the project name is ``pyairtable-run-<pid of its pytest>-<random>``): never another
    run's, whether that run is alive, killed or keeping its stack on purpose."""
    out = docker_cli(
        "ps",
        "-a",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        '{{.ID}} {{.Label "com.docker.compose.project"}}',
    ).stdout
    owners = {str(os.getpid()), *map(str, pids)}
    return [
        line
        for line in out.splitlines()
        if line.partition(" ")[2].startswith("pyairtable-run-")
        and line.partition(" ")[2].removeprefix("pyairtable-run-").split("-")[0] in owners
    ]


def service(name: str, body: str, mounts: tuple[str, ...] = ()) -> str:
    """A service of the test image on the host's network; ``mounts`` (``host:container``)
    come before the host's /usr and the stand-in's code."""
    volumes = ", ".join(f'"{m}"' for m in (*mounts, "/usr:/usr:ro", f"{ROOT}:/app:ro"))
    return f"""
  {name}:
    image: {IMAGE}
    network_mode: host
    volumes: [{volumes}]
    environment: {{PYTHONPATH: /app}}
    stop_grace_period: 5s{body}"""


def standin(name: str, port: int, delay: float = 0.0, extra: str = "") -> str:
    return service(
        name,
        f"""
    command: ["/usr/bin/python3", "-m", "pytest_pyairtable.standin", "--name", "{name}", "--port", "{port}", "--startup-delay", "{delay}"]
    x-pyairtable: {{probe: {{http: "http://127.0.0.1:{port}/health"}}}}{extra}""",
    )
