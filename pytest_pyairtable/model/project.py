"""Which files make the project and what its variables are, as ``docker compose`` decides.

- Compose files: those given (``-f``, repeatable ``--pyairtable-compose-file``, the ini
  list), else ``COMPOSE_FILE`` (split on ``COMPOSE_PATH_SEPARATOR``, default ``:``), else
  the first of ``compose.yaml``, ``compose.yml``, ``docker-compose.yml``,
  ``docker-compose.yaml`` plus the first override file beside it
  (``compose.override.yml``, ``compose.override.yaml``, ``docker-compose.override.yml``,
  ``docker-compose.override.yaml``). ``walk_up`` also looks in parent directories.
- The project directory is the first file's directory.
- Variables: the environment, then (for names it lacks) the env files: those given, else
  ``COMPOSE_ENV_FILES`` (comma-separated), else ``.env`` in the project directory.
- Profiles: those given, else ``COMPOSE_PROFILES`` from the variables (``.env`` included).
- The project name: ``COMPOSE_PROJECT_NAME``, else ``name:``, else the directory's name;
  it is also the variable ``COMPOSE_PROJECT_NAME``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..support.errors import ComposeFileError, ConfigError

DEFAULT_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_NAMES = (
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
)
# Variables that change which files are read or how: part of every cache key.
CONTROL_VARIABLES = (
    "COMPOSE_FILE",
    "COMPOSE_PATH_SEPARATOR",
    "COMPOSE_ENV_FILES",
    "COMPOSE_PROFILES",
    "COMPOSE_PROJECT_NAME",
    "COMPOSE_DISABLE_ENV_FILE",
)


@dataclass(frozen=True)
class Inputs:
    """Everything a load reads besides the files' contents."""

    files: tuple[Path, ...]
    env_files: tuple[Path, ...] | None = None  # None: COMPOSE_ENV_FILES, else .env
    profiles: tuple[str, ...] = ()  # empty: COMPOSE_PROFILES
    environ: Mapping[str, str] = field(default_factory=dict)
    project_dir: Path | None = None  # default: the first file's directory

    @property
    def working_dir(self) -> Path:
        return self.project_dir or self.files[0].parent


def find_compose_files(
    given: Sequence[str | Path],
    start: Path,
    environ: Mapping[str, str],
    *,
    search: Path | None = None,
    walk_up: bool = False,
) -> tuple[Path, ...]:
    """The compose files, as absolute paths; empty when there are none to find.

    ``given`` and ``COMPOSE_FILE`` are relative to ``start`` (the working directory);
    the default names are looked for in ``search`` (default: ``start``), and with
    ``walk_up`` in its parents too, as the command line does.
    """
    if given:
        return tuple(_absolute(start, p) for p in given)
    listed = environ.get("COMPOSE_FILE") or _dotenv_value(start / ".env", "COMPOSE_FILE")
    if listed:
        sep = environ.get("COMPOSE_PATH_SEPARATOR") or os.pathsep
        files = tuple(_absolute(start, p) for p in listed.split(sep) if p)
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ComposeFileError(
                f"COMPOSE_FILE names {', '.join(missing)}, which does not exist. "
                "Fix: correct COMPOSE_FILE (paths separated by "
                f"{sep!r}) or unset it."
            )
        return files
    directory = (search or start).resolve()
    while True:
        # lexists: a directory or a broken link by that name is found, and read fails
        # saying why (as compose's stat does), rather than "no compose file"
        found = [directory / n for n in DEFAULT_NAMES if os.path.lexists(directory / n)]
        if found:
            overrides = [directory / n for n in OVERRIDE_NAMES if (directory / n).is_file()]
            return (found[0], *overrides[:1])
        if not walk_up or directory.parent == directory:
            return ()
        directory = directory.parent


def compose_files_source(given_from: str, start: Path, environ: Mapping[str, str]) -> str:
    """Where ``find_compose_files`` takes the files from, as the header says it:
    ``given_from`` (the setting's source) when they were given, else COMPOSE_FILE, else
    compose's default names."""
    if given_from:
        return f"from {given_from}"
    if environ.get("COMPOSE_FILE"):
        return "from COMPOSE_FILE"
    if _dotenv_value(start / ".env", "COMPOSE_FILE"):
        return f"from COMPOSE_FILE in {start / '.env'}"
    return "found by compose's default names"


def _absolute(start: Path, path: str | Path) -> Path:
    return Path(os.path.abspath(start / Path(path).expanduser()))


def _dotenv_value(path: Path, name: str) -> str | None:
    from .reading import FileRefused, read_bounded

    try:
        if name.encode() not in read_bounded(path):
            return None  # the common case, without importing the parser
    except (OSError, FileRefused):
        return None
    from .dotenv import read_env_file

    try:
        return read_env_file(path, lambda _: None, {}).get(name)
    except ConfigError:
        return None  # the real load reports a broken .env


def env_files(inputs: Inputs) -> tuple[tuple[Path, ...], bool]:
    """The project env files and whether they were named (then each must exist)."""
    if inputs.env_files is not None:
        return inputs.env_files, True
    listed = [p for p in inputs.environ.get("COMPOSE_ENV_FILES", "").split(",") if p]
    if listed:
        return tuple(_absolute(Path.cwd(), p) for p in listed), True
    if inputs.environ.get("COMPOSE_DISABLE_ENV_FILE", "").lower() in ("1", "t", "true"):
        return (), False
    return (inputs.working_dir / ".env",), False


def project_variables(
    inputs: Inputs, files: Sequence[Path], named: bool, seen: set[str]
) -> dict[str, str]:
    """The environment, then what the env files add (the environment wins). ``seen``
    collects the names the env files looked up."""
    variables = dict(inputs.environ)
    variables.setdefault("PWD", os.getcwd())
    found: dict[str, str] = {}

    def lookup(name: str) -> str | None:
        seen.add(name)
        return variables.get(name)

    from .dotenv import read_env_file

    for path in files:
        if not path.exists() or path.is_dir():  # /dev/null is fine, as for compose
            if named or path.exists():
                what = "is a directory" if path.is_dir() else "not found"
                raise ConfigError(
                    f"env file {path} {what}. Fix: create it, or name another with "
                    "--pyairtable-env-file."
                )
            continue
        read_env_file(path, lookup, found)
    for key, value in found.items():
        variables.setdefault(key, value)
    return variables


def active_profiles(inputs: Inputs, variables: Mapping[str, str]) -> tuple[str, ...]:
    if inputs.profiles:
        return inputs.profiles
    # as compose: unset means [""], which activates a service listing the profile ""
    return tuple(p.strip() for p in variables.get("COMPOSE_PROFILES", "").split(","))


def normalize_name(name: str) -> str:
    return "".join(re.findall(r"[a-z0-9_-]", name.lower())).lstrip("_-")
