"""Hostile input cases: a case, how it is written into a project's directory, and what
every refusal of it must look like (our own message with its fix, never a traceback)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Setup = Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    id: str
    compose: str | bytes | None  # None: the setup writes it
    expect: str  # a fragment of our message
    env: str | bytes | None = None
    setup: Setup | None = field(default=None, compare=False)


def svc(body: str, name: str = "a") -> str:
    """One service with ``body`` (YAML flow mapping entries)."""
    return f"services:\n  {name}: {{image: x, {body}}}\n"


def write_case(case: Case, path: Path) -> None:
    if case.setup is not None:
        case.setup(path)
    if isinstance(case.compose, bytes):
        (path / "docker-compose.yml").write_bytes(case.compose)
    elif case.compose is not None:
        (path / "docker-compose.yml").write_text(case.compose)
    if isinstance(case.env, bytes):
        (path / ".env").write_bytes(case.env.replace(b"\\0", b"\0"))
    elif case.env is not None:
        (path / ".env").write_text(case.env)


def assert_ours(text: str, case: Case) -> None:
    assert case.expect in text, text[-3000:]
    for sign in ("Traceback", "INTERNALERROR", "Segmentation", "not found\n>"):
        assert sign not in text, text[-3000:]
    assert "Fix" in text, text[-3000:]
