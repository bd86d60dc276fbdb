"""Service names and dependency edges, cheaply, for registering fixtures.

Every pytest run registers one fixture per service, but most runs start nothing. So the
full load (interpolation, validation) waits until a test needs the stack, and the edges
are cached in ``.pyairtable/topology.json`` beside the compose file, keyed by its
modification time, size and the active profiles: a warm run does not even import YAML.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Edges = dict[str, list[str]]


def own_dir(path: Path) -> Path:
    """Our per-project dir (cache, kept-stack records); it ignores itself in git, as
    .pytest_cache does."""
    if not path.is_dir():
        path.mkdir()
        (path / ".gitignore").write_text("# created by pytest-pyairtable\n*\n")
    return path


def cache_dir(compose_file: Path) -> Path:
    return own_dir(compose_file.parent / ".pyairtable")


def read_topology(compose_file: Path, profiles: Sequence[str]) -> Edges:
    stat = compose_file.stat()
    key = [str(compose_file), stat.st_mtime_ns, stat.st_size, sorted(profiles)]
    try:
        cache = cache_dir(compose_file) / "topology.json"
    except OSError:
        return _parse(compose_file, profiles)  # a read-only checkout: no cache
    try:
        data = json.loads(cache.read_text())
        if data["key"] == key:
            return {str(k): [str(d) for d in v] for k, v in data["edges"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    edges = _parse(compose_file, profiles)
    with contextlib.suppress(OSError):
        cache.write_text(json.dumps({"key": key, "edges": edges}))
    return edges


def _parse(compose_file: Path, profiles: Sequence[str]) -> Edges:
    """Best effort on the raw YAML: the full load reports what is wrong with the file."""
    import yaml

    from .spec import SafeLoader

    try:
        doc: Any = yaml.load(compose_file.read_text(encoding="utf-8"), Loader=SafeLoader)  # noqa: S506
        services = doc.get("services") or {}
        active = {
            str(name): body or {}
            for name, body in services.items()
            if not (body or {}).get("profiles") or set(body["profiles"]) & set(profiles)
        }
    except Exception:
        return {}
    edges: Edges = {}
    for name, body in active.items():
        deps = body.get("depends_on") or []
        edges[name] = [str(d) for d in deps if str(d) in active]
    return edges
