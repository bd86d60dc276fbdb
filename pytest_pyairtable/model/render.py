"""``pyairtable config``: the stack as the plugin sees it, in ``docker compose config``'s shape.

For the fields we model (image, command, entrypoint, environment, depends_on,
healthcheck, ports, profiles, stop_signal, stop_grace_period, volumes) a service prints
as ``docker compose config --format json`` prints it, so the two can be diffed; then
the ``x-pyairtable`` block as the plugin uses it (the local command as argv, its
absolute cwd, the readiness probe, derived or given). Values of secrets are masked
(inside the data, see ``render_config``) unless asked for; every ``$`` is written
``$$``, as compose writes it, so that the output reads back as the same values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from .spec import ServiceSpec, StackSpec
from .values import go_float_text

_HEALTHCHECK = (
    "test",
    "timeout",
    "interval",
    "retries",
    "start_period",
    "start_interval",
    "disable",
)
_PORT = ("name", "mode", "host_ip", "target", "published", "protocol", "app_protocol")
_VOLUME = (
    "type", "source", "target", "read_only", "consistency", "bind", "volume", "tmpfs", "image",
)  # fmt: skip


def render_config(stack: StackSpec, *, show_secrets: bool = False) -> dict[str, Any]:
    """The document; its secrets masked inside the data (the values under secret-named
    keys, and what each string shows of one), never in its serialised text, so that the
    output always parses and names, paths and code stay as written."""
    services = {name: _service(svc) for name, svc in sorted(stack.services.items())}
    doc: dict[str, Any] = {"name": stack.name, "services": services}
    doc.update(sorted(stack.extensions.items()))
    if not show_secrets:
        doc = stack.redactor().data(doc)
    rendered: dict[str, Any] = _walk(doc, lambda s: s.replace("$", "$$"))
    return rendered


def dump(doc: Mapping[str, Any], fmt: str) -> str:
    if fmt == "yaml":
        import yaml

        return str(yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True, width=1000))
    return json.dumps(_finite(doc), indent=2, ensure_ascii=False)


def _finite(value: Any) -> Any:
    """JSON has no infinity or NaN (compose's printer fails on them): print Go's text."""
    if isinstance(value, float) and not math.isfinite(value):
        return go_float_text(value)
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _service(svc: ServiceSpec) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key in sorted(svc.compose):
        value = svc.compose[key]
        if key == "healthcheck":
            value = _ordered(value, _HEALTHCHECK)
        elif key == "ports":
            value = [_ordered(p, _PORT) for p in value]
        elif key == "volumes":
            value = [_ordered(v, _VOLUME) for v in value]
        elif key == "depends_on":
            value = {n: _ordered(d, ("condition", "restart", "required")) for n, d in value.items()}
        body[key] = value
    x: dict[str, Any] = {}
    if svc.local.command is not None:
        x["local"] = {"command": list(svc.local.command), "cwd": str(svc.local.cwd)}
        if svc.local.env:
            x["local"]["env"] = dict(svc.local.env)
    x["probe"] = _probe(svc)
    if svc.url:
        x["url"] = svc.url
    if svc.job_inputs:  # absolute, as local.cwd is rendered
        x["job"] = {"inputs": list(svc.job_inputs)}
    elif svc.job:
        x["job"] = True
    body["x-pyairtable"] = x
    return body


def _probe(svc: ServiceSpec) -> dict[str, Any]:
    """The probe as one would write it in x-pyairtable.probe (``started``: none needed)."""
    probe = svc.probe
    if probe.kind == "started":
        return {"started": True}
    out: dict[str, Any] = {
        probe.kind: list(probe.argv) if probe.kind == "command" else probe.target
    }
    extras = {"status": probe.status, "json": dict(probe.json), "tables": list(probe.tables),
              "migrations_table": probe.migrations_table}  # fmt: skip
    out.update((k, v) for k, v in extras.items() if v)
    return out


def _ordered(value: Mapping[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    return {k: value[k] for k in (*order, *sorted(set(value) - set(order))) if k in value}


def _walk(value: Any, text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, Mapping):
        return {k.replace("$", "$$"): _walk(v, text) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, text) for v in value]
    return value
