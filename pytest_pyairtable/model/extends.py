"""``extends``: a service starts from another one, in its file or in another file.

As compose: the base is resolved first (chains follow, across files too), then the
extending service is merged onto it with the rules of an override file (``merge``),
and ``extends`` is dropped. A name that does not exist, or a cycle, is an error naming
the chain. The other file's services come from ``load_file`` (read, interpolated,
merged and with paths relative to that file, by the loader).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..support.errors import ConfigError
from . import schema
from .canonical import absolute
from .merge import merge, strip

LoadFile = Callable[[Path], dict[str, Any]]


def apply_extends(
    cfg: dict[str, Any], path: Path, base: Path, load_file: LoadFile
) -> dict[str, Any]:
    """``cfg`` with every service's ``extends`` resolved (relative files against ``base``)."""
    services = cfg.get("services")
    if not isinstance(services, dict):
        return cfg
    services = dict(services)
    for name in list(services):
        _extend(name, services, path, base, load_file=load_file, chain=[])
    return {**cfg, "services": services}


def _extend(
    name: str,
    services: dict[str, Any],
    path: Path,
    base: Path,
    *,
    load_file: LoadFile,
    chain: list[tuple[Path, str]],
) -> Any:
    svc = services.get(name)
    if not isinstance(svc, dict) or "extends" not in svc:
        return svc
    ext = svc["extends"]
    problems = schema.check_extends(ext, f"services.{name}.extends")
    if problems:
        raise ConfigError(f"{path}: {' '.join(problems)}")
    ref = ext if isinstance(ext, str) else ext["service"]
    other = ext.get("file") if isinstance(ext, dict) else None
    source, source_path = services, path
    if isinstance(other, str):
        source_path = Path(absolute(base, other))
        source = load_file(source_path)
    if ref not in source:
        raise ConfigError(
            f"{path}: service '{name}' extends '{ref}', which {source_path} does not "
            "define. Fix: correct the name (or extends.file)."
        )
    if (path, name) in chain:
        cycle = " -> ".join(f"{n} ({p.name})" for p, n in [*chain, (path, name)])
        raise ConfigError(f"extends forms a cycle: {cycle}. Fix: remove one extends.")
    parent_base = base if source is services else source_path.parent
    deeper = [*chain, (path, name)]
    parent = _extend(ref, source, source_path, parent_base, load_file=load_file, chain=deeper)
    if parent is None:
        return svc
    merged = merge(strip(parent), svc, ("services", "x"))
    extended = {k: v for k, v in merged.items() if k != "extends"}
    services[name] = extended  # a later service extending this one starts from it
    return extended
