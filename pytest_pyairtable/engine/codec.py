"""Frozen dataclasses (a ServiceSpec and all it holds) to JSON and back, by their type
hints. A kept stack's record carries its services' specs this way, so `pyairtable
down`, `status` and `logs` work from the record alone, without reading the compose
file again (which may need variables the shell no longer has)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def from_json(kind: type[T], data: Any) -> T:
    """``data`` as a ``kind``; a field the data lacks takes its default (a record written
    before the field existed). Raises ValueError when the data does not fit."""
    value: T = _decode(kind, data)
    return value


def _decode(hint: Any, data: Any) -> Any:  # noqa: PLR0911 - one return per kind of hint
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is object:
        return data
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        return _decode(next(a for a in args if a is not type(None)), data)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass(hint, data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in data)
        return tuple(_decode(a, v) for a, v in zip(args, data, strict=True))
    if origin in (Mapping, dict, typing.Mapping, types.MappingProxyType):
        value_hint = args[1] if len(args) == 2 else Any
        decoded = {str(k): _decode(value_hint, v) for k, v in data.items()}
        return decoded if origin is dict else types.MappingProxyType(decoded)
    if origin is list:
        return [_decode(args[0] if args else Any, v) for v in data]
    if hint is Path:
        return Path(data)
    if hint in (int, float, str, bool) and not isinstance(data, hint):
        if hint is float and isinstance(data, int):
            return float(data)
        raise ValueError(f"expected {hint.__name__}, got {data!r}")
    return data


def _dataclass(kind: type[Any], data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a mapping for {kind.__name__}, got {data!r}")
    hints = typing.get_type_hints(kind)
    given = {
        f.name: _decode(hints[f.name], data[f.name])
        for f in dataclasses.fields(kind)
        if f.name in data
    }
    try:
        return kind(**given)
    except TypeError as exc:  # a required field the data lacks
        raise ValueError(f"{kind.__name__}: {exc}") from None
