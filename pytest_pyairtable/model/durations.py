"""Compose durations: ``1m30s``, ``250ms``, ``1h``, ``10s``, or a bare number of seconds."""

from __future__ import annotations

import re

from ..errors import ConfigError

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)")


def parse_duration(value: object, *, where: str = "duration") -> float:
    """Return seconds; raise ConfigError naming ``where`` for anything compose would reject."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a duration. Fix: write e.g. 10s, 1m30s.")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(f"{where}: {value!r} is negative. Fix: use a positive duration.")
        return float(value)
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{where}: empty duration. Fix: write e.g. 10s, 1m30s, 250ms.")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ConfigError(
            f"{where}: {text!r} is not a compose duration. "
            "Fix: use numbers with units us, ms, s, m, h, e.g. 10s, 1m30s, 250ms."
        )
    return total
