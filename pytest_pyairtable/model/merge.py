"""Merging compose documents as compose does: several ``-f`` files, overrides, ``extends``.

Mappings merge key by key, sequences append, scalars are replaced; then compose's
special rules by field (compose-go ``override``): ``command``, ``entrypoint`` and
``healthcheck.test`` are replaced whole; ``environment``, ``labels``, ``env_file`` ...
become ``KEY=VALUE`` sequences that are appended; ``depends_on`` merges per dependency
(its list form first becomes the mapping form); ``build`` and ``networks`` accept their
short forms. A ``!reset`` value removes what the base had, an ``!override`` value
replaces it without merging. ``enforce_unicity`` then keeps one entry per key in the
sequences compose indexes (the last definition, at the first one's place).

Nothing is mutated: documents share objects through YAML aliases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..support.errors import ComposeFileError
from .ports import port_key
from .values import Override, Reset, sprint
from .volumes import parse_volume

Path = tuple[str, ...]


def merge(base: Any, over: Any, path: Path = ()) -> Any:
    special = _special(path)
    if special is not None:
        return special(_drop_resets(base, over), strip(over), path)
    if over is None:
        return base
    if isinstance(base, dict):
        if not isinstance(over, dict):
            raise ComposeFileError(
                f"cannot override {'.'.join(path)}: a mapping with a {_kind(over)}"
            )
        return _merge_mappings(base, over, path)
    if isinstance(base, list):
        if not isinstance(over, list):
            raise ComposeFileError(f"cannot override {'.'.join(path)}: a list with a {_kind(over)}")
        return base + strip(over)
    return strip(over)


def _kind(value: Any) -> str:
    return "mapping" if isinstance(value, dict) else "list" if isinstance(value, list) else "value"


def _merge_mappings(base: dict[str, Any], over: dict[str, Any], path: Path) -> dict[str, Any]:
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, Reset):
            result.pop(key, None)
        elif isinstance(value, Override):
            result[key] = strip(value.value)
        elif key in result:
            result[key] = merge(result[key], value, (*path, key))
        else:
            result[key] = strip(value)
    return result


def _drop_resets(base: Any, over: Any) -> Any:
    """``base`` without the keys ``over`` marks ``!reset``, at any depth: compose removes
    them from what earlier files (or the extended service) wrote, before its own merge
    rules run. A key of a base in list form (``[A=1]``) stays, as compose leaves it."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return base
    return {
        k: _drop_resets(v, over[k]) if k in over else v
        for k, v in base.items()
        if not isinstance(over.get(k), Reset)
    }


def strip(value: Any) -> Any:
    """The value without ``!reset``/``!override`` markers (nothing to reset or override)."""
    if isinstance(value, dict):
        if any(isinstance(v, Reset | Override | dict | list) for v in value.values()):
            return {k: strip(v) for k, v in value.items() if not isinstance(v, Reset)}
        return value
    if isinstance(value, list):
        return [strip(v) for v in value if not isinstance(v, Reset)]
    if isinstance(value, Override):
        return strip(value.value)
    return value


def _replace(_: Any, over: Any, __: Path) -> Any:
    return over


def _to_sequence(value: Any) -> list[Any]:
    if isinstance(value, dict):
        seq: list[str] = []
        for key, item in value.items():
            if item is None:
                seq.append(key)
            elif isinstance(item, list):
                seq.extend(f"{key}={sprint(v)}" for v in item)
            else:
                seq.append(f"{key}={sprint(item)}")
        return sorted(seq)
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [value]
    return []


def _sequence(base: Any, over: Any, _: Path) -> Any:
    return _to_sequence(base) + _to_sequence(over)


def _to_mapping(value: Any, default: dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(item): None if default is None else dict(default) for item in value}
    return {}


_DEPENDENCY = {"condition": "service_started", "required": True}


def _depends_on(base: Any, over: Any, path: Path) -> Any:
    return _merge_mappings(_to_mapping(base, _DEPENDENCY), _to_mapping(over, _DEPENDENCY), path)


def _named(base: Any, over: Any, path: Path) -> Any:
    return _merge_mappings(_to_mapping(base, None), _to_mapping(over, None), path)


def _build(base: Any, over: Any, path: Path) -> Any:
    def as_map(value: Any) -> dict[str, Any]:
        return {"context": value} if isinstance(value, str) else value or {}

    return _merge_mappings(as_map(base), as_map(over), path)


def _extra_hosts(base: Any, over: Any, _: Path) -> Any:
    left = _to_sequence(base)
    return left + [v for v in _to_sequence(over) if v not in left]


def _logging(base: Any, over: Any, path: Path) -> Any:
    if not isinstance(base, dict) or not isinstance(over, dict):
        return over
    if "driver" not in base or "driver" not in over or base["driver"] == over["driver"]:
        return _merge_mappings(base, over, path)
    return over


_SPECIALS: dict[Path, Callable[[Any, Any, Path], Any]] = {
    ("networks", "*", "labels"): _sequence,
    ("volumes", "*", "labels"): _sequence,
    ("services", "*", "annotations"): _sequence,
    ("services", "*", "build"): _build,
    ("services", "*", "build", "args"): _sequence,
    ("services", "*", "build", "additional_contexts"): _sequence,
    ("services", "*", "build", "extra_hosts"): _extra_hosts,
    ("services", "*", "build", "labels"): _sequence,
    ("services", "*", "command"): _replace,
    ("services", "*", "depends_on"): _depends_on,
    ("services", "*", "deploy", "labels"): _sequence,
    ("services", "*", "dns"): _sequence,
    ("services", "*", "dns_opt"): _sequence,
    ("services", "*", "dns_search"): _sequence,
    ("services", "*", "entrypoint"): _replace,
    ("services", "*", "env_file"): _sequence,
    ("services", "*", "label_file"): _sequence,
    ("services", "*", "environment"): _sequence,
    ("services", "*", "extra_hosts"): _extra_hosts,
    ("services", "*", "healthcheck", "test"): _replace,
    ("services", "*", "labels"): _sequence,
    ("services", "*", "volumes", "*", "volume", "labels"): _sequence,
    ("services", "*", "logging"): _logging,
    ("services", "*", "models"): _named,
    ("services", "*", "networks"): _named,
    ("services", "*", "sysctls"): _sequence,
    ("services", "*", "tmpfs"): _sequence,
    ("services", "*", "ulimits", "*"): _replace,
}
_SPECIAL_LENGTHS = {len(p) for p in _SPECIALS}


def _special(path: Path) -> Callable[[Any, Any, Path], Any] | None:
    if len(path) not in _SPECIAL_LENGTHS:
        return None
    for pattern, rule in _SPECIALS.items():
        if len(pattern) == len(path) and all(
            p in ("*", q) for p, q in zip(pattern, path, strict=True)
        ):
            return rule
    return None


# -- one entry per key -------------------------------------------------------------


def _key_value(entry: Any, where: str) -> str:
    if not isinstance(entry, str):
        raise ComposeFileError(f"{where}: expected text, got {entry!r}. Fix: write KEY=VALUE.")
    return entry.split("=", 1)[0]


def _volume_target(entry: Any, where: str) -> str:
    if isinstance(entry, dict):
        target = entry.get("target")
        if not isinstance(target, str):
            raise ComposeFileError(f"{where}: a volume without a mount target. Fix: set target.")
        return target
    if isinstance(entry, str):
        return str(parse_volume(entry, where)["target"])
    return ""


def _env_file_key(entry: Any, where: str) -> str:
    if isinstance(entry, dict):
        if "path" not in entry:
            raise ComposeFileError(f"{where}: an env_file entry without path. Fix: set path.")
        return str(entry["path"])
    return str(entry)


def _mount_key(default: str) -> Callable[[Any, str], str]:
    def key(entry: Any, where: str) -> str:
        if isinstance(entry, dict):
            return str(entry.get("target") or f"{default}/{entry.get('source')}")
        return f"{default}/{entry}"

    return key


_INDEXERS: dict[str, Callable[[Any, str], str]] = {
    "annotations": _key_value,
    "cap_add": _key_value,
    "cap_drop": _key_value,
    "configs": _mount_key(""),
    "dns": _key_value,
    "dns_opt": _key_value,
    "dns_search": _key_value,
    "environment": _key_value,
    "env_file": _env_file_key,
    "expose": lambda e, w: sprint(e),
    "labels": _key_value,
    "links": _key_value,
    "ports": port_key,
    "profiles": _key_value,
    "secrets": _mount_key("/run/secrets"),
    "sysctls": _key_value,
    "tmpfs": _key_value,
    "volumes": _volume_target,
    "devices": lambda e, w: (
        str(e.get("target"))
        if isinstance(e, dict)
        else str(e).split(":")[1:2][0]
        if ":" in str(e)
        else str(e)
    ),
}


def enforce_unicity(services: dict[str, Any]) -> dict[str, Any]:
    """Deduplicate the indexed sequences of every service (a new mapping if anything changed)."""
    result = services
    for name, body in services.items():
        if not isinstance(body, dict):
            continue
        changed = {}
        for field, indexer in _INDEXERS.items():
            entries = body.get(field)
            if isinstance(entries, list) and len(entries) > 1:
                unique = _unique(entries, indexer, f"services.{name}.{field}")
                if len(unique) != len(entries) or unique != entries:
                    changed[field] = unique
        if changed:
            if result is services:
                result = dict(services)
            result[name] = {**body, **changed}
    return result


def _unique(entries: list[Any], indexer: Callable[[Any, str], str], where: str) -> list[Any]:
    seq: list[Any] = []
    index: dict[str, int] = {}
    for n, entry in enumerate(entries):
        key = indexer(entry, f"{where}[{n}]")
        if key in index:
            seq[index[key]] = entry
        else:
            index[key] = len(seq)
            seq.append(entry)
    return seq
