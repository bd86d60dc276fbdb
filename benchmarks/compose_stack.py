"""The seed-shaped stack as containers, for the compose measurements of boot.py.

No registry is reachable, so the image is a `docker import` of an empty root (with the
host's users, so PostgreSQL can run as `postgres`) and every container mounts the
host's /usr read-only: the host's PostgreSQL, Redis, curl and python3 run inside.
Host networking, 127.0.0.1 only. Healthchecks use `interval: 1s`, as in the issue.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

IMAGE = "pyairtable-bench:base"
ROOT = Path(__file__).resolve().parent.parent


def build_image() -> None:
    if (
        subprocess.run(
            ["docker", "image", "inspect", IMAGE], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("usr", "etc", "tmp", "proc", "sys", "dev", "app", "run"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name in ("tmp", "run") else 0o755
            tar.addfile(info)
        for link in ("bin", "lib", "lib64", "sbin"):
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, f"usr/{link}"
            tar.addfile(info)
        for name in ("passwd", "group"):
            data = Path(f"/etc/{name}").read_bytes()
            info = tarfile.TarInfo(f"etc/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    subprocess.run(
        ["docker", "import", "-", IMAGE], input=buffer.getvalue(), capture_output=True, check=True
    )


def _base(name: str) -> list[str]:
    return [
        f"  {name}:",
        f"    image: {IMAGE}",
        "    network_mode: host",
        f'    volumes: ["/usr:/usr:ro", "{ROOT}:/app:ro"]',
        "    environment: {PYTHONPATH: /app}",
        "    stop_grace_period: 5s",
    ]


def compose_text(edges: dict[str, list[str]], delay: float, port: dict[str, int]) -> str:
    hc = "interval: 1s, timeout: 5s, retries: 60"
    lines = ["services:"]
    pg, rd = port["postgres"], port["redis"]
    lines += [
        *_base("postgres"),
        '    user: "postgres"',
        "    command: [/bin/sh, -c, 'initdb -D /tmp/pg -U bench -A trust -N >/dev/null && "
        f"exec postgres -D /tmp/pg -p {pg} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off']",
        f'    healthcheck: {{test: ["CMD", "pg_isready", "-h", "127.0.0.1", "-p", "{pg}"], {hc}}}',
        f'    x-pyairtable: {{probe: {{postgres: "postgresql://bench@127.0.0.1:{pg}/postgres"}}}}',
    ]
    lines += [
        *_base("redis"),
        f"    command: [redis-server, --port, '{rd}', --bind, 127.0.0.1, --save, '']",
        f'    healthcheck: {{test: ["CMD", "redis-cli", "-p", "{rd}", "ping"], {hc}}}',
        f'    x-pyairtable: {{probe: {{redis: "redis://127.0.0.1:{rd}/0"}}}}',
    ]
    for name, deps in edges.items():
        if name in ("postgres", "redis"):
            continue
        p = port[name]
        lines += [
            *_base(name),
            f"    command: [/usr/bin/python3, -m, pytest_pyairtable.standin, --name, {name}, "
            f"--port, '{p}', --startup-delay, '{delay}']",
            "    depends_on: {"
            + ", ".join(f"{d}: {{condition: service_healthy}}" for d in deps)
            + "}",
            f'    healthcheck: {{test: ["CMD", "curl", "-fs", "http://127.0.0.1:{p}/health"], '
            f"{hc}}}",
        ]
    return "\n".join(lines) + "\n"
