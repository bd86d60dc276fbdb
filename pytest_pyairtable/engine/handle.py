"""What a test gets for a ready service, and its JSON form (xdist workers, kept records)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..model.spec import ServiceSpec
from ..support.redact import dataclass_repr


@dataclass(frozen=True)
class Handle:
    """What a test gets for a ready service. ``url`` is the real one, password and all,
    for the test to use; the repr masks it (a failing assert, ``pytest -l`` locals)."""

    name: str
    tier: int
    host: str
    port: int | None
    url: str
    ready_seconds: float
    log_path: Path | None
    details: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return dataclass_repr(self)


def endpoint(spec: ServiceSpec) -> tuple[str, int | None, str]:
    """Host, port and URL a client uses: a DSN, a redis URL, or an http base URL."""
    probe = spec.probe
    if spec.url:
        parts = urlsplit(spec.url)
        return parts.hostname or "127.0.0.1", parts.port, spec.url
    if probe.kind in ("postgres", "redis", "http"):
        parts = urlsplit(probe.target)
        url = probe.target if probe.kind != "http" else f"{parts.scheme}://{parts.netloc}"
        return parts.hostname or "127.0.0.1", parts.port, url
    port = spec.host_port()
    if probe.kind == "tcp":
        host, _, p = probe.target.rpartition(":")
        return host or "127.0.0.1", int(p), f"tcp://{probe.target}"
    return "127.0.0.1", port, f"http://127.0.0.1:{port}" if port else ""


def handle_to_json(handle: Handle) -> dict[str, Any]:
    data = dataclasses.asdict(handle)
    data["log_path"] = str(handle.log_path) if handle.log_path else None
    return data


def handle_from_json(data: dict[str, Any]) -> Handle:
    log_path = Path(data["log_path"]) if data.get("log_path") else None
    return Handle(**{**data, "log_path": log_path})
