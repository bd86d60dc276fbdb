"""Each case directory, through our loader and through `docker compose config --format json`.

A case is a small project under ``cases/``: its compose file(s) and whatever they read
(``.env``, env files, included and extended files), and an optional ``case.json``:

    {"env": {...}, "files": ["-f", "order"], "env_files": [...],
     "profiles": [[], ["debug"]],       # each set is one run (COMPOSE_PROFILES)
     "refuse": true, "match": "regex",  # both must refuse; ours with this message
     "reference": "why not"}            # the reference cannot decide this case (e.g. it hangs)

Both sides must agree on the active services and, for each, on every field we model
(in compose's printed shape), and the typed model the runtime uses must say the same;
or both must refuse the project.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from compose_reference import (
    check_typed,
    find_reference,
    load_ours,
    needs_reference,
    our_services,
    reference_services,
    run_reference,
)

from pytest_pyairtable.model.spec import StackSpec

CASES = Path(__file__).parent / "cases"
REFERENCE = find_reference()
pytestmark = needs_reference()


def _meta(case: Path) -> dict[str, Any]:
    path = case / "case.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _variants() -> list[tuple[str, tuple[str, ...] | None]]:
    found = []
    for case in sorted(p for p in CASES.iterdir() if p.is_dir()):
        sets = _meta(case).get("profiles")
        found += [(case.name, tuple(s)) for s in sets] if sets else [(case.name, None)]
    return found


VARIANTS = _variants()


def _env(meta: dict[str, Any], profiles: tuple[str, ...] | None) -> dict[str, str]:
    env = dict(meta.get("env", {}))
    if profiles is not None:
        env["COMPOSE_PROFILES"] = ",".join(profiles)
    return env


@pytest.fixture(scope="module")
def reference() -> dict[tuple[str, tuple[str, ...] | None], Any]:
    """Every reference run at once, a few in parallel (each costs tens of milliseconds)."""
    assert REFERENCE is not None

    def run(variant: tuple[str, tuple[str, ...] | None]) -> Any:
        meta = _meta(CASES / variant[0])
        if meta.get("reference"):
            return f"not asked: {meta['reference']}"
        return run_reference(
            REFERENCE, CASES / variant[0], _env(meta, variant[1]),
            meta.get("files", ()), meta.get("env_files", ()),
            timeout=meta.get("reference_timeout", 30),
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(VARIANTS, pool.map(run, VARIANTS), strict=True))


def test_there_are_enough_cases() -> None:
    assert len({name for name, _ in VARIANTS}) >= 60


@pytest.mark.parametrize(
    ("name", "profiles"), VARIANTS, ids=[f"{n}{'' if p is None else p}" for n, p in VARIANTS]
)
def test_case(name: str, profiles: tuple[str, ...] | None, reference: dict[Any, Any]) -> None:
    case = CASES / name
    meta = _meta(case)
    theirs = reference[(name, profiles)]
    ours = load_ours(case, _env(meta, profiles), meta.get("files", ()), meta.get("env_files", ()))
    if meta.get("refuse"):
        assert isinstance(theirs, str), f"compose accepted what the case says it refuses: {theirs}"
        assert isinstance(ours, str), "we accepted what compose refuses:\n" + theirs
        assert re.search(meta.get("match", "."), ours, re.S), ours
        assert "Traceback" not in ours
        return
    assert not isinstance(theirs, str), f"compose refused: {theirs}"
    assert not isinstance(ours, str), f"we refused what compose accepts ({theirs}):\n{ours}"
    expected = reference_services(theirs)
    assert our_services(ours) == expected
    assert ours.name == theirs["name"]
    for service, fields in expected.items():
        check_typed(ours.services[service], fields)
    if meta.get("warns"):
        assert any(re.search(meta["warns"], w) for w in ours.warnings), ours.warnings
    check_extension(ours, meta)


def check_extension(stack: StackSpec, meta: dict[str, Any]) -> None:
    """Cases may pin what our own x-pyairtable block became (compose drops it)."""
    for service, argv in meta.get("local_command", {}).items():
        assert stack.services[service].local.command == tuple(argv)
