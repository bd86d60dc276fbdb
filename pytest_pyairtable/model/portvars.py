"""Which variables ``--pyairtable-free-ports`` gives a free port: those that alone make
the host port of a ``ports:`` entry, written with a default (``"${API_PORT:-8000}:8000"``,
``published: ${API_PORT-8000}``), and that the user did not set.

The loader notes every ``ports:`` entry as written, before interpolation, in each file
it reads (included and extended ones too): ``Record.port_templates``. A literal port, a
range or a variable without a default is kept as it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_REFERENCE = re.compile(r"\$\{([_A-Za-z][_A-Za-z0-9]*)(:?-)([0-9]+)\}")


def note_port_templates(doc: Any, found: list[tuple[str, bool]]) -> None:
    """Add each ``ports:`` entry of a raw compose document (before interpolation) to
    ``found``: (text, long form?), the long form's ``published`` only."""
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict):
        return
    for body in services.values():
        ports = body.get("ports") if isinstance(body, dict) else None
        ports = getattr(ports, "value", ports)  # under !override
        for entry in ports if isinstance(ports, list) else ():
            if isinstance(entry, str):
                found.append((entry, False))
            elif isinstance(entry, dict) and isinstance(entry.get("published"), str):
                found.append((entry["published"], True))


def host_variable(template: str, long_form: bool) -> tuple[str, str] | None:
    """(variable, default) when one ``${VAR:-N}`` or ``${VAR-N}`` alone makes the host
    port of a ports entry as written; None otherwise (a literal, a range, no default)."""
    if long_form:
        match = _REFERENCE.fullmatch(template.strip())
        return (match.group(1), match.group(3)) if match else None
    found: list[re.Match[str]] = []

    def placeholder(match: re.Match[str]) -> str:
        found.append(match)
        return f"\0{len(found) - 1}\0"

    parts = _REFERENCE.sub(placeholder, template.replace("$$", "")).split(":")
    host = parts[-2].strip() if len(parts) >= 2 else ""
    single = re.fullmatch(r"\0([0-9]+)\0", host)
    if single is None:
        return None
    match = found[int(single.group(1))]
    return match.group(1), match.group(3)


def port_variables(
    templates: Iterable[tuple[str, bool]], variables: Mapping[str, str]
) -> dict[str, str]:
    """Variable -> its default, for each variable that gets a free port: those not
    set (or set empty) by the user."""
    chosen: dict[str, str] = {}
    for template, long_form in templates:
        found = host_variable(template, long_form)
        if found is not None and not variables.get(found[0]):
            chosen.setdefault(*found)
    return chosen
