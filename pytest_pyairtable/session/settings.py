"""Every setting once: its option, ini key, the seed's env var, default, parser, and
the `pyairtable` command's flag where it has one. Both front ends generate their options
from this table.

``resolve`` applies one precedence for all of them (option, then env var, then ini,
then default), remembers where each value came from (for the report header) and
returns one typed, frozen ``Settings``, built once per run. It takes plain callables so
the pytest plugin and the CLI share it.

(Over 350 lines: the table holds every setting, one entry each, and their parsers.)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..model.durations import parse_duration


def flag_value(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _flag(value: Any) -> bool:
    """A setting's on/off: ``PYAIRTABLE_FREE_PORTS=maybe`` is refused, not read as off."""
    if isinstance(value, str) and value.strip().lower() not in _FLAG_WORDS:
        raise ValueError("not on or off. Fix: write 1, true, yes, on, or 0, false, no, off")
    return flag_value(value)


_FLAG_WORDS = ("1", "true", "yes", "on", "0", "false", "no", "off", "")


def _seconds(value: Any) -> float:
    """The seed's variables are plain seconds (HEALTH_CHECK_TIMEOUT=120); durations work too."""
    try:
        return parse_duration(float(value), where="setting")
    except (TypeError, ValueError):
        return parse_duration(value, where="setting")


def _optional_seconds(value: Any) -> float | None:
    return None if value in (None, "") else _seconds(value)


def _profiles(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else str(value).replace(",", " ").split()
    return tuple(p for item in items for p in str(item).replace(",", " ").split() if p)


def _build(value: Any) -> str:
    if str(value) not in ("auto", "always", "never"):
        raise ValueError("valid values are auto, always, never")
    return str(value)


def _paths(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    return tuple(str(v) for v in items if v)


def _output_file(value: Any) -> str:
    """A file to write after the run: checked now, not found a directory at the end."""
    if os.path.isdir(str(value)):
        raise ValueError("it is a directory; name a file in it, e.g. timeline.json or .html")
    return str(value)


def _test_logs(value: Any) -> str:
    if str(value) not in TEST_LOG_MODES:
        raise ValueError(f"valid values are {', '.join(TEST_LOG_MODES)}")
    return str(value)


TEST_LOG_MODES = ("failed", "always", "never")  # which test reports carry service logs


def _line_count(value: Any) -> int:
    count = int(str(value).strip())  # a ValueError names the value
    if not 1 <= count <= 10_000:
        raise ValueError("not between 1 and 10000 (turn the logs off with never)")
    return count


def _backend(value: Any) -> str:
    from ..backends import BACKENDS

    if str(value) not in BACKENDS:
        raise ValueError(f"valid values are {', '.join(BACKENDS)}")
    return str(value)


def _up(value: Any) -> bool | tuple[str, ...]:
    """Bare (or a true ini value): the whole stack; else the services named."""
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("1", "true", "yes", "on", "all"):
        return True
    if text.lower() in ("", "0", "false", "no", "off"):
        return False
    return _profiles(text)


def _urls(value: Any) -> tuple[str, ...]:
    from ..model.urls import parse_urls

    items = value if isinstance(value, list | tuple) else str(value).split()
    urls = tuple(str(v) for v in items if v)
    parse_urls(urls)  # a careless one fails at start
    return urls


def _output_dir(value: Any) -> str:
    """A directory to write into: one that is a file fails at start, not in a test."""
    if os.path.exists(str(value)) and not os.path.isdir(str(value)):
        raise ValueError("it exists and is not a directory. Fix: name a directory")
    return str(value)


@dataclass(frozen=True)
class Setting:
    name: str
    help: str
    default: Any = None
    env: str | None = None
    parse: Callable[[Any], Any] = str
    flag: bool = False
    repeat: bool = False
    path: bool = False  # from an ini file: relative to its directory, else to the cwd
    const: Any = None  # an option that may be given bare: its value then
    cli: tuple[str, ...] = ()  # the `pyairtable` command's flags for it (a global option)

    @property
    def option(self) -> str:
        return "--pyairtable-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "pyairtable_" + self.name


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "compose_file",
        "compose file of the stack, repeatable to merge several as `docker compose -f` does "
        "(default: COMPOSE_FILE, else compose.yaml / docker-compose.yml and its override "
        "file, at pytest's rootdir or the command's working directory)",
        (),
        parse=_paths,
        repeat=True,
        path=True,
        cli=("-f", "--compose-file"),
    ),
    Setting(
        "env_file",
        "env file for interpolation (default: .env beside the compose file)",
        path=True,
        cli=("--env-file",),
    ),
    Setting(
        "up",
        "boot the stack (bare: all of it; =a,b: those services and what they need), "
        "print its URLs and keep it up until Ctrl-C; runs no tests",
        False,
        parse=_up,
        const=True,
    ),
    Setting(
        "profile",
        "activate a compose profile (repeatable)",
        (),
        "COMPOSE_PROFILES",
        parse=_profiles,
        repeat=True,
        cli=("--profile",),
    ),
    Setting(
        "backend",
        "how services run: local (processes, the default), compose (containers on a Docker "
        "engine, needs the [docker] extra), external (already running: probe only)",
        "local",
        parse=_backend,
        cli=("--backend",),
    ),
    Setting(
        "build",
        "compose backend: build images of services with build: auto, always, never",
        "auto",
        parse=_build,
    ),
    Setting(
        "keep",
        "leave the stack running after the run and record it; later runs "
        "attach to it, `pyairtable down` stops it",
        False,
        parse=_flag,
        flag=True,
    ),
    Setting(
        "local",
        "run these services on this host from their x-pyairtable.local block (the code "
        "under test, from your working tree), and the others in containers on the engine "
        "DOCKER_HOST names (the compose backend); repeatable or comma-separated",
        (),
        "PYAIRTABLE_LOCAL",
        parse=_profiles,
        repeat=True,
        cli=("--local",),
    ),
    Setting(
        "url",
        "NAME=URL of an already running service, for --pyairtable-backend=external (repeatable)",
        (),
        parse=_urls,
        repeat=True,
    ),
    Setting(
        "free_ports",
        "give every host port taken from a variable with a default (${API_PORT:-8000}) a "
        "free port instead, the same everywhere the variable is used; variables you set "
        "keep their value",
        False,
        "PYAIRTABLE_FREE_PORTS",
        parse=_flag,
        flag=True,
        cli=("--free-ports",),
    ),
    Setting(
        "inherit_env",
        "local services get this process's whole environment, not only what the compose "
        "file declares plus a small base (PATH, HOME, LANG, ...)",
        False,
        "PYAIRTABLE_INHERIT_ENV",
        parse=_flag,
        flag=True,
        cli=("--inherit-env",),
    ),
    Setting(
        "logs_dir",
        "write each service's log here (kept after the run, for CI artifacts)",
        parse=_output_dir,
        path=True,
    ),
    Setting(
        "health_check_timeout",
        "seconds a service may take to pass its probe (default: from its healthcheck, else 120)",
        None,
        "HEALTH_CHECK_TIMEOUT",
        parse=_optional_seconds,
    ),
    Setting(
        "max_startup_time",
        "seconds the whole start-up may take",
        600.0,
        "MAX_STARTUP_TIME",
        parse=_seconds,
    ),
    Setting(
        "tier_wait_time",
        "fixed pause between tiers, as the old scripts had",
        0.0,
        "TIER_WAIT_TIME",
        parse=_seconds,
    ),
    Setting(
        "service_startup_delay",
        "fixed pause after a start, before probing",
        0.0,
        "SERVICE_STARTUP_DELAY",
        parse=_seconds,
    ),
    Setting(
        "lease_timeout",
        "seconds a test may wait for its turn with the stack: while a fault or reset "
        "test has it alone, or, for that test, until the tests holding it end",
        600.0,
        parse=_seconds,
    ),
    Setting(
        "shared_db",
        "under xdist, every worker uses the stack's own PostgreSQL databases and Redis "
        "database, instead of a copy of its own made after the migrations (the default)",
        False,
        parse=_flag,
        flag=True,
    ),
    Setting(
        "no_snapshots",
        "run every job at every boot: never restore a job that declares its inputs "
        "(x-pyairtable.job.inputs) from the snapshot of the databases it wrote, nor save one",
        False,
        "PYAIRTABLE_NO_SNAPSHOTS",
        parse=_flag,
        flag=True,
        cli=("--no-snapshots",),
    ),
    Setting(
        "timeline",
        "write the start-up timeline here: a Chrome trace (.json, open in "
        "Perfetto) or a Gantt chart (.html)",
        parse=_output_file,
        path=True,
    ),
    Setting(
        "test_logs",
        "attach what each service a test used logged while the test ran to its report: "
        "failed (its failures and errors), always (passing tests too), never",
        "failed",
        "PYAIRTABLE_TEST_LOGS",
        parse=_test_logs,
    ),
    Setting(
        "test_log_lines",
        "at most this many lines of each service's log in a test's report (its last ones)",
        50,
        "PYAIRTABLE_TEST_LOG_LINES",
        parse=_line_count,
    ),
    Setting("debug", "print every probe attempt", False, "DEBUG", parse=_flag, flag=True),
)
BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The run's settings, each parsed to its type, and where each came from."""

    compose_file: tuple[str, ...]
    env_file: str | None
    up: bool | tuple[str, ...]
    profile: tuple[str, ...]
    backend: str
    build: str
    keep: bool
    local: tuple[str, ...]
    url: tuple[str, ...]
    free_ports: bool
    inherit_env: bool
    logs_dir: str | None
    health_check_timeout: float | None
    max_startup_time: float
    tier_wait_time: float
    service_startup_delay: float
    lease_timeout: float
    shared_db: bool
    no_snapshots: bool
    timeline: str | None
    test_logs: str
    test_log_lines: int
    debug: bool
    sources: Mapping[str, str]  # setting -> its option, env var, ini key, or "default"

    def with_paths(self, ini_dir: Path | None, cwd: Path) -> Settings:
        """Path settings made absolute: those from an ini file against its directory
        (``cd tests && pytest`` reads the same files), the others against ``cwd``."""
        changes: dict[str, Any] = {}
        for setting in SETTINGS:
            value = getattr(self, setting.name)
            if not setting.path or not value:
                continue
            from_ini = self.sources[setting.name].startswith("ini ")
            base = ini_dir if from_ini and ini_dir is not None else cwd
            if isinstance(value, tuple):
                changes[setting.name] = tuple(_absolute(base, v) for v in value)
            else:
                changes[setting.name] = _absolute(base, value)
        return dataclasses.replace(self, **changes)


def _absolute(base: Path, value: str) -> str:
    return os.path.abspath(base / Path(value).expanduser())


def resolve(
    option: Callable[[Setting], Any],
    ini: Callable[[Setting], Any],
    environ: Mapping[str, str],
) -> Settings:
    """Each setting from the first of: option, env var, ini key, default."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        given = option(setting)
        if given not in (None, (), [], False):
            raw, source = given, setting.option
        elif setting.env and environ.get(setting.env, "") != "":
            raw, source = environ[setting.env], f"env {setting.env}"
        elif (from_ini := ini(setting)) not in (None, "", [], (), False):
            raw, source = from_ini, f"ini {setting.ini}"
        else:
            values[setting.name], sources[setting.name] = setting.default, "default"
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except Exception as exc:
            from ..support.errors import ConfigError
            from ..support.redact import mask_patterns

            fix = "" if "Fix" in str(exc) else f". Fix: see {setting.option} in --help"
            raise ConfigError(
                mask_patterns(f"{source}: invalid value {raw!r}: {exc}{fix}")
            ) from None
        sources[setting.name] = source
    return Settings(**values, sources=sources)
