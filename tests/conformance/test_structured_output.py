"""Every case of the conformance corpus, printed by `pyairtable config` in both formats:
the output parses (masking works inside the data, never on its text), and every name of
the stack (project, services, images) is printed as written. No reference needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_reference import load_ours
from test_conformance import VARIANTS, _env, _meta

from pytest_pyairtable.model.render import dump, render_config

CASES = Path(__file__).parent / "cases"


@pytest.mark.parametrize(
    ("name", "profiles"), VARIANTS, ids=[f"{n}{'' if p is None else p}" for n, p in VARIANTS]
)
def test_structured_config_parses_and_keeps_the_names(
    name: str, profiles: tuple[str, ...] | None
) -> None:
    case = CASES / name
    meta = _meta(case)
    stack = load_ours(case, _env(meta, profiles), meta.get("files", ()), meta.get("env_files", ()))
    if isinstance(stack, str):
        return  # refused: nothing to print
    doc = render_config(stack)
    for fmt, parse in (("json", json.loads), ("yaml", yaml.safe_load)):
        printed: Any = parse(dump(doc, fmt))
        assert printed["name"] == stack.name.replace("$", "$$")
        assert set(printed["services"]) == {n.replace("$", "$$") for n in stack.services}
        for service, svc in stack.services.items():
            body = printed["services"][service.replace("$", "$$")]
            assert body.get("image", "") == svc.image.replace("$", "$$"), (service, fmt)
