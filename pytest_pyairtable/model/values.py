"""Values as compose's Go code sees them, without importing YAML (the cheap path uses them).

``Timestamp``, ``Reset`` and ``Override`` are what the YAML reader makes of a date and
of the ``!reset``/``!override`` tags; ``sprint`` prints a scalar as Go's ``fmt.Sprint``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Timestamp:
    """A plain scalar go-yaml reads as a time; compose refuses it where it checks types."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Reset:
    """``!reset``: remove what earlier files (or an extended service) set here."""


@dataclass(frozen=True)
class Override:
    """``!override``: replace what earlier files set here instead of merging with it."""

    value: Any


def sprint(value: Any) -> str:
    """A YAML scalar as Go's ``fmt.Sprint`` prints it (how compose turns numbers into text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float_text(value)
    return "<nil>" if value is None else str(value)


def go_float_text(value: float) -> str:
    """``%v`` of a float64: shortest digits, exponent form below 1e-4 and from 1e6 up."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    number = Decimal(repr(abs(value))).normalize()  # repr: the shortest exact digits
    digits = "".join(map(str, number.as_tuple().digits))
    exp = number.adjusted()
    if exp < -4 or exp >= 6:
        tail = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{tail}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    digits = digits.ljust(exp + 1, "0")
    return sign + digits[: exp + 1] + (f".{digits[exp + 1 :]}" if len(digits) > exp + 1 else "")
