"""A kept stack: left running on purpose, recorded, attached to by later runs.

``pytest --pyairtable-up --pyairtable-keep`` (or ``pyairtable up --detach``) records
the stack in ``.pyairtable/<compose-file>.json`` beside the compose file. A later run
from the same compose file, env and profiles (the fingerprint) attaches to it when
every service still runs and passes one probe, and never stops it;
``pyairtable down`` does. The file holds DSNs with passwords: it is mode 0600.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..engine.orchestrator import Handle, Orchestrator
from ..model.spec import StackSpec
from ..model.topology import own_dir
from ..probes.checks import probe_once
from ..share import handle_from_json, handle_to_json
from .process import group_alive, is_running


def state_path(compose_file: Path) -> Path:
    return compose_file.parent / ".pyairtable" / f"{compose_file.name}.json"


def fingerprint(stack: StackSpec, backend: str) -> str:
    """Changes when anything that shapes the stack does: file, env, profiles, backend."""
    text = repr((backend, stack.profiles, sorted(stack.services.items())))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass
class KeptService:
    handle: Handle
    pgid: int
    ticks: int
    stop_signal: int
    grace: float
    started: float  # wall clock, for uptime

    @property
    def alive(self) -> bool:
        return is_running(self.pgid, self.ticks)


@dataclasses.dataclass
class KeptStack:
    fingerprint: str
    run_id: str
    run_dir: str
    logs_dir: str
    services: dict[str, KeptService]
    owner_pid: int | None = None  # a foreground `up` that still holds it; None when detached
    data_dir: str = ""

    def save(self, path: Path) -> None:
        own_dir(path.parent)
        data = dataclasses.asdict(self)
        for name, svc in self.services.items():
            data["services"][name]["handle"] = handle_to_json(svc.handle)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)

    @classmethod
    def load(cls, path: Path) -> KeptStack | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        services = {
            name: KeptService(**{**svc, "handle": handle_from_json(svc["handle"])})
            for name, svc in data.pop("services").items()
        }
        return cls(services=services, **data)


def record(
    orch: Orchestrator, backend_name: str, run_id: str, owner_pid: int | None = None
) -> KeptStack:
    """Describe a running orchestrator's services so another process can find them."""
    services = {}
    for name, run in orch.runs.items():
        process = getattr(run.running, "process", None)
        if process is None or process.start_ticks is None:
            continue
        services[name] = KeptService(
            handle=orch.handle(name),
            pgid=process.pid,
            ticks=process.start_ticks,
            stop_signal=int(getattr(run.running, "stop_signal", signal.SIGTERM)),
            grace=run.spec.stop_grace_period,
            started=time.time(),
        )
    backend: Any = orch.backend
    return KeptStack(
        fingerprint=fingerprint(orch.stack, backend_name),
        run_id=run_id,
        run_dir=str(getattr(backend, "run_dir", "")),
        logs_dir=str(getattr(backend, "logs_dir", "")),
        services=services,
        owner_pid=owner_pid,
        data_dir=str(getattr(backend, "data_dir", "")),
    )


def why_not_reusable(kept: KeptStack, stack: StackSpec, backend: str) -> str | None:
    """None when a run may attach to ``kept``; else the reason, for the user."""
    if kept.fingerprint != fingerprint(stack, backend):
        return "it was booted from a different compose file, env or profiles"
    for name, svc in kept.services.items():
        if not svc.alive:
            return f"its service '{name}' is no longer running"

    def probe(name: str) -> str | None:
        failure = probe_once(stack.services[name].probe)
        return (
            None if failure is None else f"its service '{name}' does not pass its probe ({failure})"
        )

    # All at once: attaching should cost one probe's time, not the sum of ten.
    names = [n for n in kept.services if n in stack.services]
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return next((reason for reason in pool.map(probe, names) if reason), None)


def stop_kept(
    kept: KeptStack, *, emergency: bool = False, say: Callable[[str], None] = print
) -> None:
    """Stop a kept stack: dependents first (highest tier first), a tier in parallel."""
    by_tier: dict[int, list[KeptService]] = {}
    for svc in kept.services.values():
        by_tier.setdefault(svc.handle.tier, []).append(svc)
    for tier in sorted(by_tier, reverse=True):
        threads = [threading.Thread(target=_stop_group, args=(s, emergency)) for s in by_tier[tier]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for svc in by_tier[tier]:
            say(f"pyairtable: {svc.handle.name:<22} stopped")
    for path in (kept.run_dir, kept.data_dir):
        if path:
            shutil.rmtree(path, ignore_errors=True)


def _stop_group(svc: KeptService, emergency: bool) -> None:
    if not svc.alive:
        return
    sig = signal.SIGKILL if emergency else signal.Signals(svc.stop_signal)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(svc.pgid, sig)
        os.killpg(svc.pgid, signal.SIGCONT)
    deadline = time.monotonic() + svc.grace
    while group_alive(svc.pgid) and time.monotonic() < deadline:
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(svc.pgid, signal.SIGKILL)
