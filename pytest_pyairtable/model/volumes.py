"""A service volume's short syntax (``SOURCE:TARGET[:MODE]``), read as compose reads it.

``./data:/data:ro`` and ``/abs:/abs`` and ``~/x:/x`` are bind mounts; ``name:/path`` a
named volume; a lone ``/path`` an anonymous volume. ``${...}`` may hold a colon.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ..support.errors import ConfigError

_BIND_OPTIONS = {"rprivate", "private", "rshared", "shared", "rslave", "slave", "z", "Z"}


def parse_volume(spec: str, where: str) -> dict[str, Any]:
    """compose's long form of a short volume spec (``type``, ``source``, ``target`` ...)."""
    if not spec:
        raise ConfigError(f"{where}: empty volume. Fix: write SOURCE:TARGET or TARGET.")
    if len(spec.encode()) <= 2:
        return {"type": "volume", "target": clean(spec)}
    fields: dict[str, Any] = {}
    buffer = ""
    depth = 0
    for i, ch in enumerate([*spec, ""]):  # "" marks the end
        if ch == "$" and spec[i + 1 : i + 2] == "{":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        elif ch == ":" and len(buffer) == 1 and buffer.isalpha():
            pass  # a Windows drive letter
        elif ch in (":", "") and not depth:
            _field(fields, buffer, ch == "", spec, where)
            buffer = ""
            continue
        buffer += ch
    source = fields.get("source", "")
    volume: dict[str, Any] = {"target": clean(fields.get("target", ""))}
    if source:
        volume["source"] = source
    if fields.get("read_only"):
        volume["read_only"] = True
    if source[:1] in (".", "/", "~") or source.startswith("\\\\") or _drive(source):
        volume["type"] = "bind"
        volume["bind"] = {"create_host_path": True, **fields.get("bind", {})}
    else:
        volume["type"] = "volume"
        if fields.get("bind"):  # compose keeps a named volume's z/Z and propagation here
            volume["bind"] = fields["bind"]
        volume["volume"] = {"nocopy": True} if fields.get("nocopy") else {}
    return volume


def _field(fields: dict[str, Any], buffer: str, last: bool, spec: str, where: str) -> None:
    if not buffer:
        raise ConfigError(
            f"{where}: invalid volume {spec!r}: empty section between colons. "
            "Fix: write SOURCE:TARGET[:MODE]."
        )
    if "source" not in fields and last:
        fields["target"] = buffer
    elif "source" not in fields:
        fields["source"] = buffer
    elif "target" not in fields:
        fields["target"] = buffer
    elif not last:
        raise ConfigError(
            f"{where}: invalid volume {spec!r}: too many colons. Fix: write SOURCE:TARGET[:MODE]."
        )
    else:
        for option in buffer.split(","):
            if option in ("ro", "rw"):
                fields["read_only"] = option == "ro"
            elif option == "nocopy":
                fields["nocopy"] = True
            elif option in _BIND_OPTIONS:
                key = "selinux" if option in ("z", "Z") else "propagation"
                fields.setdefault("bind", {})[key] = option


def tmpfs_bytes(volume: dict[str, Any], where: str) -> dict[str, Any]:
    """A long-form volume with ``tmpfs.size`` in bytes, as compose prints it (a string:
    ``10m`` -> ``"10485760"``)."""
    tmpfs = volume.get("tmpfs")
    if not isinstance(tmpfs, dict) or "size" not in tmpfs or isinstance(tmpfs["size"], bool):
        return volume
    size = tmpfs["size"]
    count = size if isinstance(size, int) else ram_in_bytes(str(size))
    if count is None or count < 0:
        raise ConfigError(
            f"{where}.tmpfs.size: {size!r} is not a size. Fix: write bytes or e.g. 64m, 1g."
        )
    rest = {k: v for k, v in tmpfs.items() if k != "size"}
    return {**volume, "tmpfs": {**rest, "size": str(count)} if count else rest}  # 0: unset


_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int | None:
    """go-units' ``RAMInBytes`` (what compose reads sizes with): a number, an optional
    space, then b, or k/m/g/t/p (powers of 1024) with an optional b or ib."""
    cut = max(text.rfind(c) for c in "0123456789. ")
    if cut < 0:
        return None
    number, suffix = (
        (text[:cut], text[cut + 1 :]) if text[cut] == " " else (text[: cut + 1], text[cut + 1 :])
    )
    try:
        value = float(number)
    except ValueError:
        return None
    suffix = suffix.lower()
    if not 0 <= value < float("inf") or len(suffix) > 3:  # NaN too
        return None
    if suffix in ("", "b"):
        return int(value)
    if suffix[0] not in _BINARY or suffix[1:] not in ("", "b", "ib"):
        return None
    return int(value * _BINARY[suffix[0]])


def _drive(source: str) -> bool:
    return len(source) >= 2 and source[0].isalpha() and source[1] == ":"


def clean(path: str) -> str:
    """Go's ``path.Clean``."""
    if not path:
        return ""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned
