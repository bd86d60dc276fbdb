"""Service names and dependency edges, cheaply, for registering fixtures.

Every pytest run registers one fixture per service, but most runs start nothing. The
edges come from the one loader (``load_model``: same files, variables, profiles, same
errors, except that a missing variable is left for the full load to report to the tests
that need the stack), and are cached in ``.pyairtable/topology.json`` in the project
directory, keyed by every input of that load: each file it read or looked for (compose
files, included and extended files, env files; by modification time and size), a
digest of the values of every variable it looked up (and of compose's own
``COMPOSE_*`` controls) and the options. A warm run neither imports YAML nor reads a
compose file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

Edges = dict[str, list[str]]
_VERSION = 2  # of the loader's semantics: a new loader never trusts an old cache


def own_dir(path: Path) -> Path:
    """Our per-project dir (cache, kept-stack records); it ignores itself in git, as
    .pytest_cache does."""
    if not path.is_dir():
        path.mkdir()
        (path / ".gitignore").write_text("# created by pytest-pyairtable\n*\n")
    return path


def own_dir_of(compose_file: Path) -> Path:
    """Where our per-project dir for ``compose_file`` is (made by ``own_dir``)."""
    return compose_file.parent / ".pyairtable"


def cache_dir(compose_file: Path) -> Path:
    return own_dir(own_dir_of(compose_file))


def read_topology(
    files: Sequence[Path],
    *,
    env_file: Path | None = None,
    profiles: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Edges:
    """Service -> the active services it depends on. Raises the loader's ConfigError."""
    environ = dict(os.environ if environ is None else environ)
    files = [Path(os.path.abspath(f)) for f in files]
    key = [_VERSION, [str(f) for f in files], str(env_file or ""), sorted(profiles)]
    try:
        cache: Path | None = cache_dir(files[0]) / "topology.json"
    except OSError:
        cache = None  # a read-only checkout: no cache
    if cache is not None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            data = json.loads(cache.read_text())
            if data["key"] == key and _unchanged(data["files"], data["vars"], environ):
                return {str(k): [str(d) for d in v] for k, v in data["edges"].items()}
    edges, read, names = _load(files, env_file, profiles, environ)
    if cache is not None:
        entry = {
            "key": key,
            "files": read,
            "vars": [names, _digest(names, environ)],
            "edges": edges,
        }
        with contextlib.suppress(OSError):
            cache.write_text(json.dumps(entry))
    return edges


def _load(
    files: Sequence[Path], env_file: Path | None, profiles: Sequence[str], environ: dict[str, str]
) -> tuple[Edges, dict[str, Any], list[str]]:
    from .loader import load_model
    from .project import CONTROL_VARIABLES, Inputs

    inputs = Inputs(
        files=tuple(files),
        env_files=None if env_file is None else (Path(os.path.abspath(env_file)),),
        profiles=tuple(profiles),
        environ=environ,
    )
    model = load_model(inputs, strict=False)
    if not model.problems:  # every service's fields checked now, not when a test needs it
        from .spec import build_stack

        build_stack(model)
    edges = {
        name: [d for d in svc.get("depends_on") or {} if d in model.services]
        for name, svc in model.services.items()
    }
    names = sorted({*model.record.variables, *CONTROL_VARIABLES})
    return edges, model.record.files, names


def _digest(names: Iterable[str], environ: Mapping[str, str]) -> str:
    text = json.dumps([[n, environ.get(n)] for n in names])
    return hashlib.sha256(text.encode()).hexdigest()  # values may be secrets: never stored


def _unchanged(files: Mapping[str, Any], variables: list[Any], environ: Mapping[str, str]) -> bool:
    names, digest = variables
    if _digest(names, environ) != digest:
        return False
    for path, seen in files.items():
        try:
            stat = os.stat(path)
        except OSError:
            if seen is not None:
                return False
            continue
        if seen is None or [stat.st_mtime_ns, stat.st_size] != list(seen):
            return False
    return True
